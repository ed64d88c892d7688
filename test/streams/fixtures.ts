/**
 * Shared pieces of the streams tests against a real hub: keyed input written
 * straight into chosen partitions, the ground truth computed from the input
 * itself, and reading outputs back over HTTP.
 */
import { partitionForKey } from '../../protocol/index.ts';
import type { Client, SendEvent } from '../../web-client/index.ts';
import { readTopic, type ReadRecord } from '../helpers/topic-reader.ts';

export { createTopic, readTopic, type ReadRecord } from '../helpers/topic-reader.ts';

export async function waitFor(cond: () => boolean | Promise<boolean>, deadlineMs: number, what = 'condition'): Promise<void> {
  const deadline = Date.now() + deadlineMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${deadlineMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

export interface InputEvent {
  key: string;
  value: unknown;
  timestamp: number;
  /** Default: the key's partition. */
  partition?: number;
}

/** Writes events with client.produce, per partition in input order, in requests of 2,000. */
export async function produceInput(client: Client, topic: string, partitions: number, events: InputEvent[], producerId = `input-${topic}`): Promise<void> {
  const per = new Map<number, SendEvent[]>();
  for (const e of events) {
    const p = e.partition ?? partitionForKey(e.key, partitions);
    let l = per.get(p);
    if (!l) per.set(p, (l = []));
    l.push({ key: e.key, value: e.value, timestamp: e.timestamp });
  }
  await Promise.all(
    [...per].map(async ([p, list]) => {
      for (let i = 0; i < list.length; i += 2000) await client.produce(topic, list.slice(i, i + 2000), { partition: p, producerId, sequence: i });
    }),
  );
}

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

/** Keyed events in event-time order per key: `keys` keys, timestamps from `t0`, one every `stepMs` overall. */
export function keyedEvents(count: number, keys: number, t0: number, stepMs: number): InputEvent[] {
  return Array.from({ length: count }, (_, i) => ({ key: `k${i % keys}`, value: { i }, timestamp: t0 + i * stepMs }));
}
