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
import type { SendEvent } from './event-input.ts';
import type { SegmentStore } from './outbox-segment.ts';

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
   * Records per produce request this store drains best with, used when the
   * client's options name no `maxBatchRecords` (absent: 1,000). Each request
   * costs the drain a share of a removal and its own encode, send and ack.
   */
  readonly drainBatchRecords?: number;
  /**
   * Optional: the store holds events as segments (outbox-segment.ts) and the
   * drain reads, assigns and removes them through this instead of `read`,
   * `assign`, `remove` (the memory store). Absent: events one by one.
   */
  readonly segments?: SegmentStore;
  /**
   * Stores the entries in order, assigning ids (partition and sequence wait
   * for `assign`: p = -1, seq = -1). An entry that would exceed `bounds` is
   * refused (null in its slot).
   */
  append(entries: NewOutboxEvent[], bounds: OutboxBounds): Promise<Array<OutboxEvent | null>>;
  /**
   * Optional: send()'s direct path for a store that writes to disk (the
   * file store): validates one event and stores it into the write being
   * gathered, in call order; the promise (shared by the calls of one write)
   * resolves once it is durable. Undefined: not taken (no room now); the
   * caller goes through `append`.
   */
  sendDirect?(topic: string, sub: string, event: SendEvent, now: number, bounds: OutboxBounds): Promise<void> | undefined;
  /** The same for sendMany(): all validated first (an invalid event throws, none stored), then the prefix that fits is stored. */
  sendManyDirect?(topic: string, sub: string, events: ArrayLike<SendEvent>, now: number, bounds: OutboxBounds): { stored: number; done: Promise<void> } | undefined;
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
  /**
   * How many events with id <= maxId are still in the outbox; 0 exactly when none is. Above 0 it may be a
   * lower bound (the IndexedDB store answers from the draining tab's view while that view knows some are left).
   */
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
 *
 * `inPlace`: the entries themselves become the stored events (their id, p
 * and seq set here), bodies included: for the stores that keep events in
 * memory, whose entries nothing else holds (the producer builds them with
 * those fields, so their shape does not change). Otherwise: copies without
 * bodies. A refused entry is left untouched.
 */
export function assignIds(entries: NewOutboxEvent[], bounds: OutboxBounds, stats: OutboxStats, inPlace = false): Array<OutboxEvent | null> {
  const out = new Array<OutboxEvent | null>(entries.length).fill(null);
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i];
    if (stats.events + 1 > bounds.maxEvents || stats.bytes + e.bytes > bounds.maxBytes) break;
    stats.events += 1;
    stats.bytes += e.bytes;
    stats.lastId += 1;
    if (inPlace) {
      const ev = e as OutboxEvent;
      ev.id = stats.lastId;
      ev.p = -1;
      ev.seq = -1;
      out[i] = ev;
    } else out[i] = { id: stats.lastId, topic: e.topic, p: -1, seq: -1, sub: e.sub, rec: e.rec, bytes: e.bytes };
  }
  return out;
}

/** How many entries of `out` (assignIds' answer) were stored: they are a prefix. */
export function storedCount(out: ReadonlyArray<OutboxEvent | null>): number {
  let n = 0;
  while (n < out.length && out[n] !== null) n++;
  return n;
}

/** How a unit of items (submitAll) went: the first `committed` items are in; `error` is why the rest are not. */
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

/** Items submitted together (a burst of send() calls, one sendMany call), kept as one array. */
interface Unit<I> {
  items: I[];
  /** Items committed so far: a prefix, since a commit stores items in order up to the first without room. */
  done: number;
  /** Until when the unit's items may wait for room (ms since the epoch). */
  deadline: number;
  settle: (o: UnitOutcome) => void;
}

/**
 * Group commit: callers submit units of items; units that arrive while a
 * commit runs share the next one, so a burst of sends pays one storage
 * transaction (and one fsync) instead of one each. A commit answers how many
 * of the items it was given it stored: a prefix (the rest had no room).
 *
 * The queue holds units, not items: a unit of thousands of events costs one
 * entry, one promise and one settle, whatever its size (per-item promises
 * and records were most of a burst's cost, in CPU and in GC).
 *
 * Backpressure (Kafka's `max.block.ms`): the items without room stay at the
 * head of the queue, with everything submitted after them behind them, until
 * `roomMaybe()` says something left the store; past their unit's deadline
 * they are refused. Send order is thus store order, full or not.
 */
export class GroupCommit<I> {
  private queue: Array<Unit<I>> = [];
  private running = false;
  private blocked = false;
  private idleWaiters: Array<() => void> = [];
  /** idle(true) callers: also released when the queue blocks on room. */
  private quietWaiters: Array<() => void> = [];
  private wakeRoom?: () => void;
  private closedWith?: Error;
  private readonly maxItemsPerCommit: number;
  private readonly maxBlockMs: number;
  private readonly noRoom: () => Error;

  constructor(
    private readonly commit: (items: I[]) => Promise<number>,
    opts: GroupCommitOptions = {},
  ) {
    this.maxItemsPerCommit = opts.maxItemsPerCommit ?? 5_000;
    this.maxBlockMs = opts.maxBlockMs ?? 60_000;
    this.noRoom = opts.noRoom ?? (() => new Error('no room'));
  }

  /**
   * Submits items as one unit: when there is room they go in one commit (a
   * unit is never split but by the store's bounds), behind everything
   * submitted before. Resolves once every item is committed or refused, and
   * never rejects. The caller must not change `items` afterwards.
   */
  submitAll(items: I[]): Promise<UnitOutcome> {
    const closed = this.closedWith;
    if (closed) return Promise.resolve({ committed: 0, error: closed });
    if (!items.length) return Promise.resolve({ committed: 0 });
    const deadline = Date.now() + this.maxBlockMs;
    return new Promise<UnitOutcome>((settle) => {
      this.queue.push({ items, done: 0, deadline, settle });
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

  /** Refuses everything waiting, and every later submit, with `err`. */
  close(err: Error): void {
    this.closedWith = err;
    if (!this.running) for (const u of this.queue.splice(0)) u.settle({ committed: u.done, error: err });
    this.roomMaybe();
  }

  private async run(): Promise<void> {
    this.running = true;
    // Let the rest of a synchronous burst (a loop of sendMany calls) join the first commit.
    await Promise.resolve();
    try {
      while (this.queue.length) {
        if (this.closedWith) {
          for (const u of this.queue.splice(0)) u.settle({ committed: u.done, error: this.closedWith });
          break;
        }
        // Whole units (at least one) up to maxItemsPerCommit: a unit is one transaction when there is room.
        let k = 0;
        let n = 0;
        while (k < this.queue.length) {
          const u = this.queue[k];
          const left = u.items.length - u.done;
          if (k > 0 && n + left > this.maxItemsPerCommit) break;
          n += left;
          k++;
        }
        const units = this.queue.slice(0, k);
        let items: I[];
        if (k === 1 && units[0].done === 0) items = units[0].items;
        else {
          items = new Array<I>(n);
          let i = 0;
          for (const u of units) for (let j = u.done; j < u.items.length; j++) items[i++] = u.items[j];
        }
        let stored: number;
        try {
          stored = await this.commit(items);
        } catch (err) {
          this.queue.splice(0, k);
          for (const u of units) u.settle({ committed: u.done, error: err });
          continue;
        }
        let finished = 0;
        for (const u of units) {
          const take = Math.min(stored, u.items.length - u.done);
          u.done += take;
          stored -= take;
          if (u.done < u.items.length) break;
          finished++;
        }
        this.queue.splice(0, finished);
        for (let i = 0; i < finished; i++) units[i].settle({ committed: units[i].done });
        if (finished === k) continue;
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

  /** Waits for room or for the head's deadline; refuses the units whose deadline has passed. */
  private async waitForRoom(): Promise<void> {
    const now = Date.now();
    let expired = 0;
    while (expired < this.queue.length && this.queue[expired].deadline <= now) expired++;
    if (expired) {
      const err = this.noRoom();
      for (const u of this.queue.splice(0, expired)) u.settle({ committed: u.done, error: err });
      return; // the next in line tries at once
    }
    if (!this.queue.length || this.closedWith) return;
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
