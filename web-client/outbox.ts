/**
 * The outbox: where `send()` puts an event, durably, before anything goes on
 * the wire; an event leaves it only when the hub's ack for it arrives.
 *
 * Exactly-once rests on three facts kept here:
 * 1. the producer id is created once per outbox and kept with it;
 * 2. every event gets its partition and its sequence (dense per producer and
 *    partition, the batch form's rule) once, in an atomic write (`assign`)
 *    that happens before it first goes on the wire, so a re-sent event
 *    carries the very (pid, partition, seq) the hub may already have, even
 *    after a reload or a change of the topic's partition count;
 * 3. events are handed out in append order (`id`) and assigned in that
 *    order, so per-partition sequences (and per-key order) follow send order.
 *
 * Events written by an older client (records form, sequences per topic)
 * have no `p`; they drain in the records form under `legacyProducerId`
 * before the topic's newer events (see producer.ts).
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
  /**
   * The partition the event goes to, chosen by the drainer (`assign`) from
   * the topic's partition count and kept; -1 until then. Absent: an event of
   * an older outbox, sent in the records form (the hub picks its partition).
   */
  p?: number;
  /**
   * Producer sequence: per (producer, partition), dense, once assigned (-1
   * before); for an event without `p`, counted per topic (records form).
   */
  seq: number;
  /** Subject (JWT `sub`) of the token the event was queued under; '' when anonymous. Stored outboxes carry this field name. */
  sub: string;
  rec: WireRecord;
  /** Size counted against the outbox's byte bound. */
  bytes: number;
  /**
   * Optional: the record body (protocol/batch.ts `recordBodySize`: attributes,
   * key, value, headers), encoded once at `send()`, so that batches are built
   * by copying it. A store may keep it or drop it (the drain encodes `rec`
   * then). It may be a view into a larger shared buffer: a store that
   * serialises it by structured clone should copy it (`body.slice()`).
   */
  body?: Uint8Array;
}

export type NewOutboxEvent = Omit<OutboxEvent, 'id' | 'seq' | 'p'>;

/** The partition the drainer chose for an event (the store numbers it in `assign`). */
export interface Assignment {
  event: OutboxEvent;
  p: number;
}

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
  /**
   * Opens (creating on first use) and returns the producer id kept with this
   * outbox, and for an outbox an older client wrote in the records form, the
   * producer id its events without `p` were numbered under.
   */
  open(): Promise<{ producerId: string; legacyProducerId?: string }>;
  /**
   * Stores the entries in order, assigning ids (partition and sequence wait
   * for `assign`: p = -1, seq = -1). An entry that would exceed `bounds` is
   * refused (null in its slot).
   */
  append(entries: NewOutboxEvent[], bounds: OutboxBounds): Promise<Array<OutboxEvent | null>>;
  /** Up to `maxEvents` events with id > afterId, in id order. */
  read(afterId: number, maxEvents: number): Promise<OutboxEvent[]>;
  /**
   * Gives each event its partition and the next sequence of (producer,
   * partition), in the order given (id order), atomically, and returns the
   * events as stored. Called before an event first goes on the wire; an event
   * already assigned keeps what it has.
   */
  assign(assignments: Assignment[]): Promise<OutboxEvent[]>;
  /** Removes acknowledged events (absent ids are ignored). */
  remove(events: OutboxEvent[]): Promise<void>;
  /**
   * Moves events to the failed list and, in the same atomic write, adds
   * their sequences to their lane's skipped list (see `skipped`).
   */
  fail(events: OutboxEvent[], code: string, message: string): Promise<void>;
  /**
   * Per lane (`laneKey`: topic/partition, or the topic for records-form
   * events), the sequences of events refused for good, ascending; kept
   * across `clearFailed()`. The hub refuses a forward gap, so the events
   * after a refused one go on the wire renumbered without it (`wireSequence`).
   */
  skipped(): Promise<Record<string, number[]>>;
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

/**
 * The sequence space an event is numbered in: `topic/partition` in the batch
 * form (topic names have no '/'), the topic for records-form events.
 */
function laneKey(e: Pick<OutboxEvent, 'topic' | 'p'>): string {
  return e.p === undefined ? e.topic : `${e.topic}/${e.p}`;
}

/** Adds the failed events' sequences to `skips` (per lane, ascending), in place. Unassigned events took none. */
export function addSkips(skips: Record<string, number[]>, events: Array<Pick<OutboxEvent, 'topic' | 'seq' | 'p'>>): void {
  for (const e of events) {
    if (e.seq < 0 || e.p === -1) continue;
    const list = (skips[laneKey(e)] ??= []);
    // Failures come mostly in sequence order: insert from the end.
    let i = list.length;
    while (i > 0 && list[i - 1] > e.seq) i--;
    if (list[i - 1] !== e.seq) list.splice(i, 0, e.seq);
  }
}

/**
 * The sequence an event carries on the wire: its outbox sequence less the
 * refused-for-good sequences below it, so that a refusal leaves no gap (the
 * refused records were never appended, so their numbers are free).
 */
export function wireSequence(seq: number, skipped: number[] | undefined): number {
  if (!skipped || skipped.length === 0 || skipped[0] > seq) return seq;
  let lo = 0;
  let hi = skipped.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (skipped[mid] < seq) lo = mid + 1;
    else hi = mid;
  }
  return seq - lo;
}

/** A failed-list entry for an event: without its record body, which only batches use. */
export function failedEvent(e: OutboxEvent, code: string, message: string, failedAt: number): FailedEvent {
  const f: FailedEvent = { ...e, code, message, failedAt };
  delete f.body;
  return f;
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
 * Assigns ids for one append the same way in every store; `stats` is
 * updated in place. Partition and sequence come later (`assign`).
 *
 * Entries are taken in order up to the first that does not fit the bounds;
 * that one and every one after it are refused (null). A later, smaller event
 * must not slip in ahead of a refused one: the refused wait for room and then
 * go in, still in send order.
 */
export function assignIds(entries: NewOutboxEvent[], bounds: OutboxBounds, stats: OutboxStats, keepBodies = false): Array<OutboxEvent | null> {
  const out = new Array<OutboxEvent | null>(entries.length).fill(null);
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i];
    if (stats.events + 1 > bounds.maxEvents || stats.bytes + e.bytes > bounds.maxBytes) break;
    stats.events += 1;
    stats.bytes += e.bytes;
    stats.lastId += 1;
    out[i] =
      keepBodies && e.body
        ? { id: stats.lastId, topic: e.topic, p: -1, seq: -1, sub: e.sub, rec: e.rec, bytes: e.bytes, body: e.body }
        : { id: stats.lastId, topic: e.topic, p: -1, seq: -1, sub: e.sub, rec: e.rec, bytes: e.bytes };
  }
  return out;
}

/** A commit's answer for an item that did not fit the outbox's bounds: it waits for room. */
export const NO_ROOM = Symbol('no room');

interface Waiting<I, O> {
  item: I;
  /** Until when the item may wait for room (ms since the epoch). */
  deadline: number;
  /** Items submitted together share a unit number: a commit never splits a unit unless the store is full. */
  unit: number;
  /** The item's place in its unit (submitAll). */
  index: number;
  resolve: (o: O) => void;
  reject: (e: unknown, index: number) => void;
}

/** How a unit of items (submitAll) went: the first `committed` items are in; `error` is why the next one is not. */
export interface UnitOutcome {
  committed: number;
  error?: unknown;
}

export interface GroupCommitOptions {
  maxItemsPerCommit?: number;
  /** How long an item may wait for room before it is refused with `noRoom()` (0: at once). */
  maxBlockMs?: number;
  /** The error an item gets when its wait for room ran out. */
  noRoom?: () => Error;
}

/**
 * Group commit: callers submit items; items that arrive while a commit runs
 * share the next one, so a burst of sends pays one storage transaction (and
 * one fsync) instead of one each. A commit returns one result per item: a
 * value, an Error that rejects only that item, or NO_ROOM.
 *
 * Backpressure (Kafka's `max.block.ms`): an item answered NO_ROOM stays at
 * the head of the queue, with everything submitted after it behind it, until
 * `roomMaybe()` says something left the store; past its deadline it is
 * refused. Send order is thus store order, full or not.
 */
export class GroupCommit<I, O> {
  private queue: Array<Waiting<I, O>> = [];
  private running = false;
  private blocked = false;
  private idleWaiters: Array<() => void> = [];
  /** idle(true) callers: also released when the queue blocks on room. */
  private quietWaiters: Array<() => void> = [];
  private wakeRoom?: () => void;
  private units = 0;
  private closedWith?: Error;
  private readonly maxItemsPerCommit: number;
  private readonly maxBlockMs: number;
  private readonly noRoom: () => Error;

  constructor(
    private readonly commit: (items: I[]) => Promise<Array<O | Error | typeof NO_ROOM>>,
    opts: GroupCommitOptions = {},
  ) {
    this.maxItemsPerCommit = opts.maxItemsPerCommit ?? 5_000;
    this.maxBlockMs = opts.maxBlockMs ?? 60_000;
    this.noRoom = opts.noRoom ?? (() => new Error('no room'));
  }

  submit(item: I): Promise<O> {
    return this.submitEach([item])[0];
  }

  /**
   * Submits items as neighbours in the queue: when there is room they share
   * one commit (up to maxItemsPerCommit). One promise per item, in order.
   */
  submitEach(items: I[]): Array<Promise<O>> {
    const closed = this.closedWith;
    if (closed) return items.map(() => Promise.reject(closed));
    const deadline = Date.now() + this.maxBlockMs;
    const unit = ++this.units;
    const all = items.map(
      (item) =>
        new Promise<O>((resolve, reject) => {
          this.queue.push({ item, deadline, unit, index: 0, resolve, reject });
        }),
    );
    if (!this.running) void this.run();
    return all;
  }

  /**
   * Submits items as one unit, as submitEach does, with one promise for all
   * of them instead of one each (sendMany of thousands): it resolves once
   * every item is committed or refused, and never rejects.
   */
  submitAll(items: I[]): Promise<UnitOutcome> {
    const closed = this.closedWith;
    if (closed) return Promise.resolve({ committed: 0, error: closed });
    if (!items.length) return Promise.resolve({ committed: 0 });
    const deadline = Date.now() + this.maxBlockMs;
    const unit = ++this.units;
    return new Promise<UnitOutcome>((done) => {
      let left = items.length;
      let first = items.length;
      let error: unknown;
      const settle = (): void => {
        if (--left === 0) done(first === items.length ? { committed: first } : { committed: first, error });
      };
      const refuse = (e: unknown, index: number): void => {
        if (index < first) {
          first = index;
          error = e;
        }
        settle();
      };
      for (let i = 0; i < items.length; i++) this.queue.push({ item: items[i], deadline, unit, index: i, resolve: settle, reject: refuse });
      if (!this.running) void this.run();
    });
  }

  /** Something may have left the store: items waiting for room try again. */
  roomMaybe(): void {
    const w = this.wakeRoom;
    this.wakeRoom = undefined;
    w?.();
  }

  /**
   * Resolves once every item submitted so far has been committed or refused;
   * with `orBlocked`, also when the only items left wait for room.
   */
  idle(orBlocked = false): Promise<void> {
    if (!this.running && this.queue.length === 0) return Promise.resolve();
    if (orBlocked && this.blocked) return Promise.resolve();
    return new Promise((r) => (orBlocked ? this.quietWaiters : this.idleWaiters).push(r));
  }

  /** Items waiting for a commit (not counting the one running). */
  get waiting(): number {
    return this.queue.length;
  }

  /** Refuses everything waiting, and every later submit, with `err`. */
  close(err: Error): void {
    this.closedWith = err;
    for (const w of this.queue.splice(0)) w.reject(err, w.index);
    this.roomMaybe();
  }

  private async run(): Promise<void> {
    this.running = true;
    // Let the rest of a synchronous burst (a loop of send() calls) join the first commit.
    await Promise.resolve();
    try {
      while (this.queue.length) {
        let n = Math.min(this.queue.length, this.maxItemsPerCommit);
        while (n < this.queue.length && this.queue[n].unit === this.queue[n - 1].unit) n++; // sendMany: one transaction
        const batch = this.queue.slice(0, n);
        let results: Array<O | Error | typeof NO_ROOM>;
        try {
          results = await this.commit(batch.map((w) => w.item));
        } catch (err) {
          this.take(batch.length);
          for (const w of batch) w.reject(err, w.index);
          continue;
        }
        let done = 0;
        while (done < batch.length && results[done] !== NO_ROOM) done++;
        this.take(done);
        for (let i = 0; i < done; i++) {
          const r = results[i] as O | Error;
          if (r instanceof Error) batch[i].reject(r, batch[i].index);
          else batch[i].resolve(r);
        }
        if (done === batch.length) continue;
        await this.waitForRoom();
      }
    } finally {
      this.running = false;
      this.blocked = false;
      const waiters = [...this.idleWaiters, ...this.quietWaiters];
      this.idleWaiters = [];
      this.quietWaiters = [];
      for (const w of waiters) w();
    }
  }

  /** Removes the first n items (only run() removes from the head, so they are the batch just committed). */
  private take(n: number): void {
    if (this.queue.length && n) this.queue.splice(0, n);
  }

  /** Waits for room or for the head's deadline; refuses the items whose deadline has passed. */
  private async waitForRoom(): Promise<void> {
    const now = Date.now();
    let expired = 0;
    while (expired < this.queue.length && this.queue[expired].deadline <= now) expired++;
    if (expired) {
      const err = this.noRoom();
      for (const w of this.queue.splice(0, expired)) w.reject(err, w.index);
      return; // the next in line tries at once
    }
    if (!this.queue.length) return;
    this.blocked = true;
    const waiters = this.quietWaiters;
    this.quietWaiters = [];
    for (const w of waiters) w();
    let timer: ReturnType<typeof setTimeout> | undefined;
    await new Promise<void>((resolve) => {
      this.wakeRoom = resolve;
      timer = setTimeout(resolve, Math.max(0, this.queue[0].deadline - now));
    });
    clearTimeout(timer);
    this.wakeRoom = undefined;
    this.blocked = false;
  }
}
