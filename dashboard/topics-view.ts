/**
 * Topics at a glance: partitions, per-partition offsets, size on disk, and
 * the produce rate (records per second, from the log end offsets between
 * two polls). From GET /v1/topics and each topic's description.
 */
import type { TopicDescription } from '../web-client/index.ts';
import { el, errorText, formatBytes, poll, table, type View } from './dom.ts';
import type { HubSession } from './hub-session.ts';

const POLL_MS = 1_000;
/** Topics described per poll (one request each): a hub with thousands of topics lists the rest by name. */
const MAX_DESCRIBED_TOPICS = 200;

export function topicsView(session: HubSession): View {
  return (root) => {
    const status = el('p', { class: 'muted' }, 'loading…');
    const holder = el('div');
    root.append(el('h2', {}, 'Topics'), status, holder);
    const last = new Map<string, { records: number; at: number; rate: number }>();

    return poll(async () => {
      let described: TopicDescription[];
      let more: string[] = [];
      try {
        const topics = await session.admin.listTopics();
        described = await Promise.all(topics.slice(0, MAX_DESCRIBED_TOPICS).map((t) => session.admin.describeTopic(t.name)));
        more = topics.slice(MAX_DESCRIBED_TOPICS).map((t) => t.name);
      } catch (err) {
        status.textContent = `could not load topics: ${errorText(err)}`;
        return;
      }
      const now = performance.now();
      const rows = described.map((d) => {
        const ends = d.offsets.reduce((n, o) => n + o.logEnd, 0);
        const prev = last.get(d.name);
        const rate = prev && now > prev.at ? Math.max(0, ((ends - prev.records) * 1000) / (now - prev.at)) : 0;
        last.set(d.name, { records: ends, at: now, rate });
        const link = el('a', { href: `#/topic/${encodeURIComponent(d.name)}` }, d.name);
        return [link, d.partitions, d.offsets.map((o) => `${o.earliest}–${o.logEnd}`).join(', '), formatBytes(d.offsets.reduce((n, o) => n + o.bytes, 0)), `${rate.toFixed(rate < 10 ? 1 : 0)}/s`];
      });
      const count = described.length + more.length;
      status.textContent = `${count} topic${count === 1 ? '' : 's'} · offsets are earliest–log end per partition${more.length ? ` · ${more.length} more not described: ${more.slice(0, 50).join(', ')}…` : ''}`;
      holder.replaceChildren(table('topics', ['topic', 'partitions', 'offsets', 'size', 'rate'], rows, 'no topics yet'));
    }, POLL_MS);
  };
}
