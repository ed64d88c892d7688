/**
 * Shared pieces of the streams tests against a real hub: keyed input written
 * straight into chosen partitions, the ground truth computed from the input
 * itself, and reading outputs back over HTTP.
 */
import type { InputEvent } from '../../harness/stream-input.ts';
import { readLazyRecords } from '../../protocol/index.ts';
import type { ConsumedRecord } from '../../web-client/index.ts';
import { readTopic, type ReadRecord } from '../../harness/topic-reader.ts';

export { createTopic, readTopic, type ReadRecord } from '../../harness/topic-reader.ts';

export { waitFor } from '../../harness/wait.ts';
export { keyedEvents, produceInput, type InputEvent } from '../../harness/stream-input.ts';

/** Windowed results (value { key, start, end, value }) of a topic, latest per window, and every update in order per window. */
export async function windowResults(hubUrl: string, topic: string): Promise<{ latest: Map<string, number>; updates: Map<string, number[]>; records: ReadRecord[] }> {
  const records = await readTopic(hubUrl, topic);
  const latest = new Map<string, number>();
  const updates = new Map<string, number[]>();
  for (const r of records) {
    const v = r.value as { key: string; start: number; value: number };
    const k = `${v.key}@${v.start}`;
    latest.set(k, v.value);
    let u = updates.get(k);
    if (!u) updates.set(k, (u = []));
    u.push(v.value);
  }
  return { latest, updates, records };
}

/** The count per `key@windowStart` straight from the input. */
export function directCounts(events: InputEvent[], windowMs: number): Map<string, number> {
  const m = new Map<string, number>();
  for (const e of events) {
    const k = `${e.key}@${e.timestamp - (e.timestamp % windowMs)}`;
    m.set(k, (m.get(k) ?? 0) + 1);
  }
  return m;
}

/** A batch's records as a lazyValues subscription hands them to the streams source (topic 'in', partition 0). */
export function lazyInputRecords(batch: Uint8Array): ConsumedRecord[] {
  return readLazyRecords(batch, 0, (o, ts, key, headers, vs, i): ConsumedRecord => ({
    topic: 'in',
    partition: 0,
    offset: o,
    timestamp: ts,
    key,
    headers,
    get value() {
      return vs.value(i);
    },
    get valueBytes() {
      return vs.bytes(i);
    },
    get valueEncoding() {
      return vs.encoding(i);
    },
  }));
}
