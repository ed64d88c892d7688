/** Keyed input for stream processing, written straight into chosen partitions: shared by the streams tests and bench/streams.ts. */
import { partitionForKey } from '../protocol/index.ts';
import type { Client, SendEvent } from '../web-client/index.ts';

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

/** Keyed events in event-time order per key: `keys` keys, timestamps from `t0`, one every `stepMs` overall. */
export function keyedEvents(count: number, keys: number, t0: number, stepMs: number): InputEvent[] {
  return Array.from({ length: count }, (_, i) => ({ key: `k${i % keys}`, value: { i }, timestamp: t0 + i * stepMs }));
}
