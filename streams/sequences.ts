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

  set(topic: string, partition: number, next: number): void {
    this.next.set(`${topic}\u0000${partition}`, next);
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

/** LIMITS.maxProducerIdBytes (255) less what a changelog id adds to a task's id: `.changelog.` (11), an instance id (≤ 40), `.` and a nonce (12). */
const TASK_PRODUCER_ID_MAX_BYTES = 191;
/** Instance ids longer than this are hashed inside the changelog producer id. */
const INSTANCE_ID_MAX_BYTES = 40;
/** What is kept of a too-long id in front of its hash, so that it stays readable in the hub's producer state. */
const READABLE_PREFIX_CHARS = 100;

const FNV64_OFFSET = 0xcbf29ce484222325n;
const FNV64_PRIME = 0x100000001b3n;
const MASK64 = (1n << 64n) - 1n;

/** FNV-1a over the UTF-8 bytes, 64 bits, as 16 hex digits. */
function fnv1a64(bytes: Uint8Array, seed: number): string {
  let h = FNV64_OFFSET ^ BigInt(seed);
  for (const b of bytes) h = ((h ^ BigInt(b)) * FNV64_PRIME) & MASK64;
  return h.toString(16).padStart(16, '0');
}

/** 128 bits (two seeded FNV-1a 64) of a string, as 32 hex digits: stable in every runtime, synchronous. */
function idHash(s: string): string {
  const bytes = new TextEncoder().encode(s);
  return fnv1a64(bytes, 0) + fnv1a64(bytes, 0x9e3779b9);
}

function utf8Length(s: string): number {
  return new TextEncoder().encode(s).length;
}

/**
 * The output producer id of a task: `<app>.<root topic>.<partition>`,
 * stable across restarts and owners. When that is longer than
 * TASK_PRODUCER_ID_MAX_BYTES (a long applicationId, whose repartition topics
 * repeat it), a readable prefix and a 128-bit hash of the whole id, so that
 * the changelog producer id built on it stays within LIMITS.maxProducerIdBytes.
 */
export function taskProducerId(applicationId: string, rootTopic: string, partition: number): string {
  const id = `${applicationId}.${rootTopic}.${partition}`;
  if (utf8Length(id) <= TASK_PRODUCER_ID_MAX_BYTES) return id;
  return `${id.slice(0, READABLE_PREFIX_CHARS)}~${idHash(id)}`;
}

/** The changelog producer id of one ownership of a task: `<task id>.changelog.<instance id>.<nonce>`, a long instance id hashed. */
export function changelogProducerId(taskId: string, instanceId: string, nonce: string): string {
  const inst = utf8Length(instanceId) <= INSTANCE_ID_MAX_BYTES ? instanceId : idHash(instanceId);
  return `${taskId}.changelog.${inst}.${nonce}`;
}
