/**
 * In-flight idempotent appends per (topic, partition, producer id).
 *
 * The engine knows the highest sequence it has appended (lastSequence), but a
 * pipelining producer has further batches on their way to disk. A retry that
 * arrives while its original is still in flight must not be appended again:
 * the highest sequence that counts is the larger of the engine's and every
 * in-flight append's. Entries disappear as their appends settle, so the map
 * is bounded by the appends in flight.
 */
import type { LogStore } from '../storage/log-store.ts';

interface InFlight {
  maxSequence: number;
  settled: Promise<unknown>;
}

export class ProducerSequences {
  private readonly lanes = new Map<string, InFlight[]>();

  constructor(private readonly store: LogStore) {}

  private static key(topic: string, partition: number, producerId: string): string {
    return `${topic}\u0000${partition}\u0000${producerId}`;
  }

  /** The highest sequence appended or being appended by this producer on this partition, or -1. */
  highest(topic: string, partition: number, producerId: string): number {
    let max = this.store.lastSequence(topic, partition, producerId);
    const lane = this.lanes.get(ProducerSequences.key(topic, partition, producerId));
    if (lane) for (const f of lane) if (f.maxSequence > max) max = f.maxSequence;
    return max;
  }

  /** Everything in flight right now, settled (success or failure). */
  settledNow(topic: string, partition: number, producerId: string): Promise<unknown> | undefined {
    const lane = this.lanes.get(ProducerSequences.key(topic, partition, producerId));
    if (!lane || lane.length === 0) return undefined;
    return Promise.allSettled(lane.map((f) => f.settled));
  }

  /** Records an append in flight until `append` settles. */
  track(topic: string, partition: number, producerId: string, maxSequence: number, append: Promise<unknown>): void {
    const key = ProducerSequences.key(topic, partition, producerId);
    let lane = this.lanes.get(key);
    if (!lane) this.lanes.set(key, (lane = []));
    const entry: InFlight = { maxSequence, settled: append };
    lane.push(entry);
    const done = (): void => {
      const l = this.lanes.get(key);
      if (!l) return;
      const i = l.indexOf(entry);
      if (i >= 0) l.splice(i, 1);
      if (l.length === 0) this.lanes.delete(key);
    };
    append.then(done, done);
  }

  get size(): number {
    return this.lanes.size;
  }
}
