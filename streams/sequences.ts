/**
 * Deterministic output sequences. A task's outputs all carry the producer id
 * of its input partition, and each (output topic, partition) has its own
 * dense sequence (the hub refuses a gap). The next sequence per output
 * partition is part of the task's progress record, written to the changelog
 * with the input offset it belongs to: a task that resumes from that offset
 * starts from those sequences, so reprocessing numbers every output exactly
 * as the first attempt did and the hub drops what it already has.
 */
export type SequenceEntry = [topic: string, partition: number, next: number];

export class SequenceBook {
  private readonly next = new Map<string, number>();

  static from(entries: readonly SequenceEntry[] | undefined): SequenceBook {
    const b = new SequenceBook();
    for (const [t, p, n] of entries ?? []) b.next.set(`${t}\u0000${p}`, n);
    return b;
  }

  /** The sequence of the next output to (topic, partition), and advances it. */
  take(topic: string, partition: number): number {
    const k = `${topic}\u0000${partition}`;
    const n = this.next.get(k) ?? 0;
    this.next.set(k, n + 1);
    return n;
  }

  peek(topic: string, partition: number): number {
    return this.next.get(`${topic}\u0000${partition}`) ?? 0;
  }

  entries(): SequenceEntry[] {
    const out: SequenceEntry[] = [];
    for (const [k, n] of this.next) {
      const i = k.indexOf('\u0000');
      out.push([k.slice(0, i), Number(k.slice(i + 1)), n]);
    }
    return out.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] - b[1]));
  }
}

/** The output producer id of a task: stable across restarts and owners, short enough for LIMITS.maxProducerIdBytes. */
export function taskProducerId(applicationId: string, rootTopic: string, partition: number): string {
  return `${applicationId}.${rootTopic}.${partition}`;
}
