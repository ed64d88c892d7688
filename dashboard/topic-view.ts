/**
 * One topic: its partitions' offsets, a live tail, and charts of the
 * numeric fields of its values. The tail starts live (from the latest
 * offset); "replay" starts it over from an offset, or from a time picked on
 * the timeline (which spans the topic's oldest record to now), and then
 * follows live, through one web-client subscription.
 */
import type { SubscribeOptions, SubscriptionHandle } from '../web-client/index.ts';
import { el, errorText, formatBytes, poll, table, type View } from './dom.ts';
import type { HubSession } from './hub-session.ts';
import { LiveCharts } from './live-charts.ts';
import { LiveTail } from './live-tail.ts';

const OFFSETS_POLL_MS = 2_000;

function button(id: string, text: string, onClick: () => void): HTMLButtonElement {
  const b = el('button', { id, type: 'button' }, text);
  b.addEventListener('click', onClick);
  return b;
}

function partitionsTable(rows: Array<{ partition: number; earliest: number; highWatermark: number; logEnd: number; bytes: number }>): HTMLElement {
  return table(
    'partitions',
    ['partition', 'earliest', 'high watermark', 'log end', 'size'],
    rows.map((o) => [o.partition, o.earliest, o.highWatermark, o.logEnd, formatBytes(o.bytes)]),
  );
}

/** What the tail is showing, in words. */
function modeText(from: SubscribeOptions['from'], where: string): string {
  if (from === 'latest') return `live from the latest offset, ${where}`;
  if (typeof from === 'number') return `replay from offset ${from}, ${where}, then live`;
  return `replay from ${new Date((from as { timestamp: number }).timestamp).toISOString()}, ${where}, then live`;
}

interface ReplayInputs {
  partition: HTMLSelectElement;
  offsetInput: HTMLInputElement;
  timeline: HTMLInputElement;
  timeLabel: HTMLElement;
}

/** The two rows of controls: partition, follow live, replay from an offset; the timeline and replay from a time. */
function replayControls(i: ReplayInputs, start: (from: SubscribeOptions['from']) => void): HTMLElement[] {
  return [
    el(
      'div',
      { class: 'controls' },
      i.partition,
      button('follow-live', 'Follow live', () => start('latest')),
      el('label', {}, 'offset ', i.offsetInput),
      button('replay-offset-go', 'Replay from offset', () => start(Number(i.offsetInput.value))),
    ),
    el(
      'div',
      { class: 'controls timeline' },
      el('label', { for: 'timeline' }, 'timeline'),
      i.timeline,
      i.timeLabel,
      button('replay-time-go', 'Replay from this time', () => start({ timestamp: Number(i.timeline.value) })),
    ),
  ];
}

export function topicView(session: HubSession, topic: string): View {
  return (root) => {
    const status = el('p', { class: 'muted', id: 'topic-status' }, 'loading…');
    const offsets = el('div');
    const partition = el('select', { id: 'partition' }, el('option', { value: '' }, 'all partitions'));
    const offsetInput = el('input', { id: 'replay-offset', type: 'number', min: '0', value: '0', size: '8' });
    const timeline = el('input', { id: 'timeline', type: 'range', min: '0', max: '0', value: '0', step: '1' });
    const timeLabel = el('span', { id: 'timeline-time', class: 'muted' }, '');
    const mode = el('p', { id: 'mode' }, '');
    const tailBox = el('div', { class: 'tail' });
    const chartBox = el('div', { class: 'charts', id: 'charts' });
    root.append(
      el('h2', {}, `Topic ${topic}`),
      status,
      offsets,
      ...replayControls({ partition, offsetInput, timeline, timeLabel }, (from) => start(from)),
      mode,
      el('div', { class: 'panes' }, el('section', {}, el('h3', {}, 'Live tail'), tailBox), el('section', {}, el('h3', {}, 'Charts'), chartBox)),
    );
    const tail = new LiveTail(tailBox);
    const charts = new LiveCharts(chartBox);
    let sub: SubscriptionHandle | undefined;
    let oldestMs: number | undefined;
    const client = session.wsClient();
    const offError = client.on('error', (e) => (mode.textContent = `subscription error: ${errorText(e)}`));

    const showTime = (): void => {
      timeLabel.textContent = Number(timeline.value) ? new Date(Number(timeline.value)).toISOString() : '';
    };
    timeline.addEventListener('input', showTime);

    function start(from: SubscribeOptions['from']): void {
      sub?.close();
      tail.clear();
      charts.clear();
      const p = partition.value === '' ? undefined : Number(partition.value);
      const where = p === undefined ? 'all partitions' : `partition ${p}`;
      mode.textContent = modeText(from, where);
      const opts: SubscribeOptions = { from };
      if (p !== undefined) opts.partitions = [p];
      sub = client.subscribe(topic, opts, (r) => {
        tail.add(r);
        charts.add(r.timestamp, r.value);
      });
    }

    /** The timeline's left end: the oldest retained record's time over the partitions (read once). */
    async function findOldest(earliest: Array<{ partition: number; earliest: number; logEnd: number }>): Promise<void> {
      const firsts = await Promise.all(earliest.filter((o) => o.logEnd > o.earliest).map((o) => session.admin.read(topic, o.partition, { offset: o.earliest, limit: 1 })));
      const times = firsts.flatMap((a) => a.records.map((r) => r.timestamp));
      if (times.length) oldestMs = Math.min(...times);
    }

    const stopPoll = poll(async () => {
      try {
        const d = await session.admin.describeTopic(topic);
        if (partition.options.length !== d.partitions + 1) {
          const keep = partition.value;
          partition.replaceChildren(el('option', { value: '' }, 'all partitions'), ...d.offsets.map((o) => el('option', { value: String(o.partition) }, `partition ${o.partition}`)));
          partition.value = keep;
        }
        if (oldestMs === undefined) await findOldest(d.offsets);
        const now = Date.now();
        const atEnd = timeline.value === timeline.max;
        timeline.min = String(oldestMs ?? now);
        timeline.max = String(now);
        if (atEnd || Number(timeline.value) < Number(timeline.min)) timeline.value = atEnd ? String(now) : timeline.min;
        showTime();
        status.textContent = `${d.partitions} partition${d.partitions === 1 ? '' : 's'} · ${formatBytes(d.offsets.reduce((n, o) => n + o.bytes, 0))}${oldestMs ? ` · oldest record ${new Date(oldestMs).toISOString()}` : ''}`;
        offsets.replaceChildren(partitionsTable(d.offsets));
      } catch (err) {
        status.textContent = `could not load topic ${topic}: ${errorText(err)}`;
      }
    }, OFFSETS_POLL_MS);

    start('latest');
    return () => {
      stopPoll();
      offError();
      sub?.close();
      tail.destroy();
      charts.destroy();
    };
  };
}
