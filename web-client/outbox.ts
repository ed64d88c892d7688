/**
 * The outbox: where `send()` puts an event, durably, before anything goes on
 * the wire; an event leaves it only when the hub's ack for it arrives.
 *
 * Exactly-once rests on three facts kept here:
 * 1. the producer id is created once per outbox and kept with it;
 * 2. every event gets its sequence number (per topic, `seq` of the first
 *    record + i on the wire) in the same atomic write that stores it, so a
 *    re-sent event carries the very (pid, seq) the hub may already have;
 * 3. events are handed out in append order (`id`), so per-topic sequences
 *    (and per-key order) are sent in order.
 *
 * Stores: IndexedDB (browsers), memory, an fsynced file journal (Node), or
 * any `OutboxStore` the application brings.
 */
import type { WireRecord } from '../protocol/index.ts';

/** An event in the outbox. */
export interface OutboxEvent {
  /** Append order within this outbox; increasing, never reused. */
  id: number;
  topic: string;
  /** Producer sequence number, counted per topic. */
  seq: number;
  /** Subject (JWT `sub`) of the token the event was queued under; '' when anonymous. */
  sub: string;
  rec: WireRecord;
  /** Size counted against the outbox's byte bound. */
  bytes: number;
}

export type NewOutboxEvent = Omit<OutboxEvent, 'id' | 'seq'>;

/** An event the hub refused for good; kept apart so the rest drains on. */
export interface FailedEvent extends OutboxEvent {
  code: string;
  message: string;
  failedAt: number;
}

export interface OutboxBounds {
  maxEvents: number;
  maxBytes: number;
}

export interface OutboxStats {
  events: number;
  bytes: number;
  /** Highest id ever assigned (0 when none). */
  lastId: number;
}

/** Partition → next offset to deliver, as a subscription persists it. */
export type Positions = Record<string, number>;

/**
 * What an outbox storage must do. Every method is atomic: after a crash an
 * `append` is either whole (events, sequences, counters) or absent.
 */
export interface OutboxStore {
  /** Opens (creating on first use) and returns the producer id kept with this outbox. */
  open(): Promise<{ producerId: string }>;
  /**
   * Stores the entries in order, assigning ids and per-topic sequences. An
   * entry that would exceed `bounds` is refused (null in its slot) and takes
   * no sequence.
   */
  append(entries: NewOutboxEvent[], bounds: OutboxBounds): Promise<Array<OutboxEvent | null>>;
  /** Up to `maxEvents` events with id > afterId, in id order. */
  read(afterId: number, maxEvents: number): Promise<OutboxEvent[]>;
  /** Removes acknowledged events (absent ids are ignored). */
  remove(events: OutboxEvent[]): Promise<void>;
  /** Moves events to the failed list. */
  fail(events: OutboxEvent[], code: string, message: string): Promise<void>;
  failed(): Promise<FailedEvent[]>;
  /** Empties the failed list. */
  clearFailed(): Promise<void>;
  stats(): Promise<OutboxStats>;
  /** How many events with id <= maxId are still in the outbox. */
  countThrough(maxId: number): Promise<number>;
  loadPositions(name: string): Promise<Positions | undefined>;
  savePositions(name: string, positions: Positions): Promise<void>;
  close(): Promise<void>;
}

/** Default bounds: generous for a phone, small enough to notice a hub that never comes back. */
export const DEFAULT_OUTBOX_BOUNDS: OutboxBounds = { maxEvents: 100_000, maxBytes: 64 * 1024 * 1024 };

/** A producer id: 128 random bits, hex. randomUUID needs a secure context; getRandomValues does not. */
export function newProducerId(): string {
  const b = new Uint8Array(16);
  globalThis.crypto.getRandomValues(b);
  let s = '';
  for (const x of b) s += x.toString(16).padStart(2, '0');
  return s;
}

/**
 * Assigns sequences for one append the same way in every store: `next` maps
 * topic → next sequence and is updated in place; `stats` likewise.
 */
export function assignSequences(
  entries: NewOutboxEvent[],
  bounds: OutboxBounds,
  stats: OutboxStats,
  nextSeq: (topic: string) => number,
  setNextSeq: (topic: string, seq: number) => void,
): Array<OutboxEvent | null> {
  const out = new Array<OutboxEvent | null>(entries.length);
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i];
    if (stats.events + 1 > bounds.maxEvents || stats.bytes + e.bytes > bounds.maxBytes) {
      out[i] = null;
      continue;
    }
    const seq = nextSeq(e.topic);
    setNextSeq(e.topic, seq + 1);
    stats.events += 1;
    stats.bytes += e.bytes;
    stats.lastId += 1;
    out[i] = { id: stats.lastId, topic: e.topic, seq, sub: e.sub, rec: e.rec, bytes: e.bytes };
  }
  return out;
}

interface Waiting<I, O> {
  item: I;
  resolve: (o: O) => void;
  reject: (e: unknown) => void;
}

/**
 * Group commit: callers submit one item each; items that arrive while a
 * commit runs share the next one, so a burst of sends pays one storage
 * transaction (and one fsync) instead of one each. A commit returns one
 * result per item: a value, or an Error that rejects only that item.
 */
export class GroupCommit<I, O> {
  private queue: Array<Waiting<I, O>> = [];
  private running = false;
  private idleWaiters: Array<() => void> = [];

  constructor(
    private readonly commit: (items: I[]) => Promise<Array<O | Error>>,
    private readonly maxItemsPerCommit = 5_000,
  ) {}

  submit(item: I): Promise<O> {
    return new Promise<O>((resolve, reject) => {
      this.queue.push({ item, resolve, reject });
      if (!this.running) void this.run();
    });
  }

  /** Resolves once every item submitted so far has been committed (or refused). */
  idle(): Promise<void> {
    if (!this.running && this.queue.length === 0) return Promise.resolve();
    return new Promise((r) => this.idleWaiters.push(r));
  }

  /** Items waiting for a commit (not counting the one running). */
  get waiting(): number {
    return this.queue.length;
  }

  private async run(): Promise<void> {
    this.running = true;
    // Let the rest of a synchronous burst (a loop of send() calls) join the first commit.
    await Promise.resolve();
    try {
      while (this.queue.length) {
        const batch = this.queue.splice(0, this.maxItemsPerCommit);
        let results: Array<O | Error>;
        try {
          results = await this.commit(batch.map((w) => w.item));
        } catch (err) {
          for (const w of batch) w.reject(err);
          continue;
        }
        for (let i = 0; i < batch.length; i++) {
          const r = results[i];
          if (r instanceof Error) batch[i].reject(r);
          else batch[i].resolve(r);
        }
      }
    } finally {
      this.running = false;
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const w of waiters) w();
    }
  }
}
