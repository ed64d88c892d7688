/**
 * Consumer groups: the list with state, members and total lag, and one
 * group's members, their assigned partitions, and committed offsets with
 * lag per partition. From GET /v1/groups and GET /v1/groups/:group.
 */
import { el, errorText, poll, table, type View } from './dom.ts';
import type { HubSession } from './hub-session.ts';

const POLL_MS = 1_000;

export function groupsView(session: HubSession): View {
  return (root) => {
    const status = el('p', { class: 'muted' }, 'loading…');
    const holder = el('div');
    root.append(el('h2', {}, 'Consumer groups'), status, holder);
    return poll(async () => {
      try {
        const groups = await session.admin.listGroups();
        status.textContent = `${groups.length} group${groups.length === 1 ? '' : 's'}`;
        holder.replaceChildren(
          table(
            'groups',
            ['group', 'state', 'generation', 'members', 'topics', 'lag'],
            groups.map((g) => [el('a', { href: `#/group/${encodeURIComponent(g.group)}` }, g.group), g.state, g.generation, g.members, g.topics.join(', '), g.lag]),
            'no consumer groups yet',
          ),
        );
      } catch (err) {
        status.textContent = `could not load groups: ${errorText(err)}`;
      }
    }, POLL_MS);
  };
}

export function groupView(session: HubSession, group: string): View {
  return (root) => {
    const status = el('p', { class: 'muted' }, 'loading…');
    const holder = el('div');
    root.append(el('h2', {}, `Group ${group}`), status, holder);
    return poll(async () => {
      try {
        const d = await session.admin.describeGroup(group);
        const lag = d.offsets.reduce((n, o) => n + o.lag, 0);
        status.textContent = `${d.state} · generation ${d.generation} · ${d.members.length} member${d.members.length === 1 ? '' : 's'} · lag ${lag}`;
        holder.replaceChildren(
          el('h3', {}, 'Members and assignments'),
          table(
            'members',
            ['member', 'client', 'topic', 'partitions'],
            d.members.map((m) => [m.member, m.client, m.topic, m.partitions.join(', ')]),
            'no members',
          ),
          el('h3', {}, 'Committed offsets and lag'),
          table(
            'group-offsets',
            ['topic', 'partition', 'committed', 'high watermark', 'lag'],
            d.offsets.map((o) => [o.topic, o.partition, o.committed ?? '–', o.highWatermark, o.lag]),
            'nothing committed',
          ),
        );
      } catch (err) {
        status.textContent = `could not load group ${group}: ${errorText(err)}`;
      }
    }, POLL_MS);
  };
}
