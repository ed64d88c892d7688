/**
 * The producer: puts events into the outbox (group commit) and, in the tab
 * or process that holds the drain lease, drains the outbox to the hub in
 * order (outbox-drain.ts: lanes per partition, batch form, pipelined).
 *
 * An event leaves the outbox when its ack arrives; a batch the hub refuses
 * for good moves to the failed list and the lane goes on. When the
 * connection drops, the session ends and the next one re-reads the outbox
 * from the start: whatever was in flight is re-sent with the same producer
 * id, partitions and sequences, and the hub answers a batch it already
 * appended with the original offsets.
 */
import type { Connection } from './connection.ts';
import { ClientError } from './errors.ts';
import { toOutboxRecord, type SendEvent } from './event-input.ts';
import { Drainer, SessionEnded } from './outbox-drain.ts';
import type { StagedEvents } from './outbox-memory.ts';
import { checkEvents } from './outbox-segment.ts';
import { GroupCommit, storedCount, type FailedEvent, type NewOutboxEvent, type OutboxBounds, type OutboxEvent, type OutboxStore, type UnitOutcome } from './outbox.ts';
import { batchCrc32c } from './runtime.ts';
import { OutboxSignal, requestDrainLease, type DrainLease } from './tabs.ts';

export interface ProducerOptions {
  store: OutboxStore;
  name: string;
  bounds: OutboxBounds;
  maxInFlightBatches: number;
  maxBatchRecords: number;
  maxBatchBytes: number;
  /** How long send() waits for room in a full outbox before OUTBOX_FULL (0: refuse at once). */
  maxBlockMs: number;
  /** Subject of the token new events are queued under. */
  subject: () => Promise<string>;
  /** That subject when it is known without waiting (send()'s fast path), else undefined. */
  subjectNow?: () => string | undefined;
}

/** What an `ack` event tells: where each event of one acknowledged batch landed. */
export interface AckInfo {
  topic: string;
  /** True when the hub had appended every record of the batch before (a retry). */
  duplicate: boolean;
  /**
   * Per event: `id`, its place in its outbox's append order (from 1 in a new
   * outbox: the n-th event queued has id n); `seq`, its sequence in its
   * partition (per topic for an older client's events); where it landed.
   */
  records: Array<{ id: number; seq: number; partition: number; offset: number }>;
}

export interface ProducerSink {
  ack(info: AckInfo): void;
  error(err: Error): void;
}

/**
 * The send() calls of one burst (the same tick, up to BURST_MAX_EVENTS): one
 * subject lookup, one unit in the group commit, one settle; each caller's
 * promise is one `then` on the burst's outcome.
 */
interface Burst {
  entries: OutboxEvent[];
  outcome: Promise<UnitOutcome>;
}

/** Events per send() burst: a larger burst becomes several units (and commits). */
const BURST_MAX_EVENTS = 5_000;

/** What a send() that went straight into the outbox returns (nothing to wait for: it is in). */
const STORED = Promise.resolve();

interface FlushWaiter {
  maxId: number;
  resolve: () => void;
  reject: (e: Error) => void;
}

export class Producer {
  private readonly commit: GroupCommit<NewOutboxEvent>;
  /** The send() burst still taking events (until its subject is known). */
  private burst?: Burst;
  /**
   * Settles once every burst and sendMany call so far is in the group
   * commit's queue: they go in in call order (a later one never overtakes
   * one whose subject lookup is slower), and flush() counts them.
   */
  private queued: Promise<unknown> = Promise.resolve();
  private producerId = '';
  /** The producer id kept with the outbox (set once the store is open). */
  get id(): string {
    return this.producerId;
  }
  private opened?: Promise<void>;
  private lease?: DrainLease;
  private signal?: OutboxSignal;
  private session = 0;
  private drainer?: Drainer;
  private foreignReported = false;
  private waiters: FlushWaiter[] = [];
  private pollTimer?: ReturnType<typeof setInterval>;
  private checking = false;
  private closed = false;
  /** Lowest id of an event of another subject met by the current session (Infinity: none). */
  private foreignMin = Infinity;
  /** Units (bursts, sendMany calls) queued through the group commit and not settled yet. */
  private slow = 0;
  /** send()'s one-event list for the store's fast path (no array per call). */
  private readonly one: SendEvent[] = [];
  private wakeQueued = false;
  /** The last write send()'s direct path joined (the drain is woken when it settles). */
  private directDone?: Promise<void>;
  /** Direct sendMany calls waiting for room (appendAsRoomComes). */
  private roomWaiters: Array<() => void> = [];

  constructor(
    private readonly o: ProducerOptions,
    private readonly conn: Connection,
    private readonly sink: ProducerSink,
  ) {
    this.commit = new GroupCommit<NewOutboxEvent>(
      async (items) => {
        await this.open();
        const stored = storedCount(await o.store.append(items, o.bounds));
        // Wake the drain per commit, not per unit: a unit waiting for room needs the part already in drained.
        if (stored > 0) this.appended();
        return stored;
      },
      {
        maxBlockMs: o.maxBlockMs,
        noRoom: () => this.noRoom(),
      },
    );
    conn.on('open', () => this.startSession());
    conn.on('state', (s) => {
      if (s !== 'open') this.endSession();
      if (s === 'unauthorized') this.rejectWaiters(new ClientError('AUTH_FAILED', 'the hub refused the credentials; pending events stay in the outbox'));
    });
  }

  /** Opens the store and starts waiting for the drain lease. */
  open(): Promise<void> {
    this.opened ??= (async () => {
      void batchCrc32c(); // loads the native CRC while the store opens, not when the first batch waits for it
      const { producerId, legacyProducerId } = await this.o.store.open();
      this.producerId = producerId;
      this.drainer = new Drainer(
        {
          store: this.o.store,
          conn: this.conn,
          sink: this.sink,
          producerId,
          legacyProducerId,
          live: (id) => this.live(id),
          left: () => this.left(),
          foreign: (id, minId, subject) => this.foreign(id, minId, subject),
        },
        { maxInFlightBatches: this.o.maxInFlightBatches, maxBatchRecords: this.o.maxBatchRecords, maxBatchBytes: this.o.maxBatchBytes },
      );
      this.signal = new OutboxSignal(this.o.name, (kind) => {
        if (kind === 'appended') this.drainer?.wake();
        else {
          // Another tab drained: sends waiting for room here try again.
          this.commit.roomMaybe();
          this.wakeRoom();
          void this.checkWaiters();
        }
      });
      this.lease = requestDrainLease(this.o.name);
      void this.lease.acquired.then(() => this.startSession());
    })();
    return this.opened;
  }

  /**
   * Puts one event into the outbox; resolves once it is durably there. A
   * full outbox makes it wait for room (acks draining it) up to maxBlockMs.
   * The calls of one tick are one burst (see Burst): validated here one by
   * one, stored together.
   */
  send(topic: string, event: SendEvent): Promise<void> {
    if (this.closed) return Promise.reject(new ClientError('CLOSED', 'client is closed'));
    const sub = this.directSubject();
    if (sub !== undefined) {
      const one = this.one;
      one[0] = event;
      let n: number;
      try {
        n = this.o.store.segments!.appendEvents!(topic, sub, one, 0, 1, Date.now(), this.o.bounds);
      } catch (err) {
        return Promise.reject(err);
      } finally {
        one.length = 0;
      }
      if (n === 1) {
        this.wakeSoon();
        return STORED;
      }
      // No room: the usual path waits for it (maxBlockMs).
    } else if (this.o.store.sendDirect && this.slow === 0 && !this.burst && this.drainer) {
      const done = this.sendDirect(topic, event);
      if (done) return done;
    }
    let entry: OutboxEvent;
    try {
      entry = this.entry(topic, event, '', Date.now());
    } catch (err) {
      return Promise.reject(err);
    }
    let b = this.burst;
    if (!b || b.entries.length >= BURST_MAX_EVENTS) b = this.newBurst();
    const i = b.entries.push(entry) - 1;
    return b.outcome.then((o) => {
      if (i >= o.committed) throw o.error;
    });
  }

  /**
   * The subject events may be stored under right now, straight into the
   * store's open chunk (`SegmentStore.appendEvents`: encoded once, no object
   * per event), or undefined when they must take the group commit: the store
   * has no such path, the drain is not set up yet, an earlier unit still
   * waits (for its subject or for room: a later event must not overtake it),
   * or the subject is not known without waiting.
   */
  private directSubject(): string | undefined {
    if (this.slow !== 0 || this.burst || !this.drainer || !this.o.store.segments?.appendEvents) return undefined;
    return this.o.subjectNow?.();
  }

  /** The file store's direct path (OutboxStore.sendDirect); the drain is woken once per write, when it is on disk. */
  private sendDirect(topic: string, event: SendEvent): Promise<void> | undefined {
    const sub = this.o.subjectNow?.();
    if (sub === undefined) return undefined;
    let done: Promise<void> | undefined;
    try {
      done = this.o.store.sendDirect!(topic, sub, event, Date.now(), this.o.bounds);
    } catch (err) {
      return Promise.reject(err);
    }
    return done && this.joined(done);
  }

  /** A write of the direct path: the drain is woken once it is on disk (once per write, not per call). */
  private joined(done: Promise<void>): Promise<void> {
    if (done !== this.directDone) {
      this.directDone = done;
      done.then(
        () => this.appended(),
        () => undefined,
      );
    }
    return done;
  }

  /** Wakes the drain once for the events a tick's send() calls stored. */
  private wakeSoon(): void {
    if (this.wakeQueued) return;
    this.wakeQueued = true;
    queueMicrotask(() => {
      this.wakeQueued = false;
      this.appended();
    });
  }

  private newBurst(): Burst {
    const entries: OutboxEvent[] = [];
    const burst: Burst = { entries, outcome: this.enqueue(entries, () => this.burst === burst && (this.burst = undefined)) };
    this.burst = burst;
    return burst;
  }

  /**
   * Queues entries (one unit) behind every earlier burst and sendMany call,
   * under the subject of the token at the time of the call; `closing` runs
   * once no more entries may join. The outcome never rejects.
   */
  private enqueue(entries: OutboxEvent[], closing?: () => void): Promise<UnitOutcome> {
    const subject = this.o.subject();
    this.slow++;
    const inQueue = Promise.all([subject, this.queued]).then(
      ([sub]) => {
        closing?.();
        for (const e of entries) e.sub = sub;
        return { outcome: this.commit.submitAll(entries) };
      },
      (err: unknown) => {
        closing?.();
        return { outcome: Promise.resolve<UnitOutcome>({ committed: 0, error: err }) };
      },
    );
    this.queued = inQueue;
    return inQueue
      .then(({ outcome }) => outcome)
      .then((o) => {
        this.slow--;
        return o;
      });
  }

  /**
   * Puts many events of one topic into the outbox in send order, in one
   * storage transaction when there is room (near the bound they go in as room
   * appears, still in order). Every event is validated before any is queued:
   * an invalid one rejects the call with nothing queued. On OUTBOX_FULL after
   * maxBlockMs, `details.enqueued` says how many of the first events went in.
   */
  async sendMany(topic: string, events: SendEvent[]): Promise<void> {
    if (this.closed) throw new ClientError('CLOSED', 'client is closed');
    if (!Array.isArray(events)) throw new TypeError('sendMany(topic, events) needs an array of events');
    if (events.length === 0) return;
    const now = Date.now();
    let entries: OutboxEvent[];
    let direct = 0;
    const sub = this.directSubject();
    if (sub !== undefined) {
      // Straight into the store; whatever does not fit now (validated first) waits for room below.
      let short = false;
      let staged: StagedEvents | undefined;
      const segments = this.o.store.segments!;
      direct = segments.appendEvents!(topic, sub, events, 0, events.length, now, this.o.bounds, (n) => {
        // Encoded once, into staging chunks, where the store offers them; else checked now and written later.
        if (segments.stageEvents) staged = segments.stageEvents(topic, sub, events, n, events.length, now, this.o.bounds.maxBytes, this.o.bounds);
        else checkEvents(events, n, events.length, now, this.o.bounds.maxBytes);
        short = true;
      });
      if (direct > 0) this.appended();
      if (short) await this.appendAsRoomComes(topic, sub, events, direct, now, staged);
      return;
    }
    // The file store's direct path: all validated, the part that fits in the write being gathered (its promise).
    let written: Promise<void> | undefined;
    const fileSub = this.o.store.sendManyDirect && this.slow === 0 && !this.burst && this.drainer ? this.o.subjectNow?.() : undefined;
    const d = fileSub === undefined ? undefined : this.o.store.sendManyDirect!(topic, fileSub, events, now, this.o.bounds);
    if (d) {
      direct = d.stored;
      written = this.joined(d.done);
      if (direct === events.length) return written;
    }
    entries = new Array<OutboxEvent>(events.length - direct);
    for (let i = direct; i < events.length; i++) entries[i - direct] = this.entry(topic, events[i], '', now);
    this.burst = undefined; // sends after this call queue behind it
    const { committed, error } = await this.enqueue(entries);
    await written;
    if (error === undefined) return;
    if (error instanceof ClientError && error.code === 'OUTBOX_FULL') {
      const enqueued = direct + committed;
      throw new ClientError('OUTBOX_FULL', `${error.message}; ${enqueued} of ${events.length} events were queued`, { details: { enqueued } });
    }
    throw error;
  }

  /**
   * The rest of a sendMany call that went straight into the store, from
   * `from` on (validated already): as room appears, straight in too (no
   * entry object per event, encoded once), until maxBlockMs. Sends and
   * sendMany calls made meanwhile queue behind it (`slow`, `queued`).
   */
  private async appendAsRoomComes(topic: string, sub: string, events: SendEvent[], from: number, now: number, staged?: StagedEvents): Promise<void> {
    this.slow++;
    let release!: () => void;
    const done = new Promise<void>((r) => (release = r));
    this.queued = Promise.all([this.queued, done]);
    const deadline = Date.now() + this.o.maxBlockMs;
    try {
      while (from < events.length) {
        if (this.closed) throw new ClientError('CLOSED', `client closed while send() waited for room in the outbox; ${from} of ${events.length} events were queued`, { details: { enqueued: from } });
        const left = deadline - Date.now();
        if (left <= 0) {
          throw new ClientError('OUTBOX_FULL', `${this.noRoom().message}; ${from} of ${events.length} events were queued`, { details: { enqueued: from } });
        }
        await new Promise<void>((wake) => {
          const timer = setTimeout(wake, left);
          this.roomWaiters.push(() => {
            clearTimeout(timer);
            wake();
          });
        });
        const segments = this.o.store.segments!;
        const n = staged && segments.appendStaged ? segments.appendStaged(staged, this.o.bounds) : segments.appendEvents!(topic, sub, events, from, events.length, now, this.o.bounds);
        if (n > 0) this.appended();
        from += n;
      }
    } finally {
      this.slow--;
      release();
    }
  }

  private noRoom(): ClientError {
    const o = this.o;
    return new ClientError('OUTBOX_FULL', `outbox is full (max ${o.bounds.maxEvents} events, ${o.bounds.maxBytes} bytes) and did not drain within maxBlockMs (${o.maxBlockMs} ms)`);
  }

  /** Something left the outbox (or the client closes): direct sendMany calls waiting for room try again. */
  private wakeRoom(): void {
    const w = this.roomWaiters;
    if (!w.length) return;
    this.roomWaiters = [];
    for (const f of w) f();
  }

  /**
   * Validates an event into an outbox entry, shaped as the event the memory
   * and file stores keep (they number it in place); an event larger than the
   * byte bound could never get in.
   */
  private entry(topic: string, event: SendEvent, subject: string, now: number): OutboxEvent {
    const { rec, bytes, body } = toOutboxRecord(topic, event, now, true);
    if (bytes > this.o.bounds.maxBytes) throw new ClientError('OUTBOX_FULL', `event of ${bytes} bytes exceeds the outbox's maxOutboxBytes (${this.o.bounds.maxBytes})`);
    return { id: 0, topic, p: -1, seq: -1, sub: subject, rec, bytes, body };
  }

  private appended(): void {
    this.drainer?.wake();
    this.signal?.post('appended');
  }

  async pending(): Promise<number> {
    await this.open();
    await this.queued;
    await this.commit.idle(true);
    return (await this.o.store.stats()).events;
  }

  async failed(): Promise<FailedEvent[]> {
    await this.open();
    return this.o.store.failed();
  }

  /** Resolves when every event in the outbox now (from any tab, page or process before) is acked or failed. */
  async flush(): Promise<void> {
    if (this.closed) throw new ClientError('CLOSED', 'client is closed');
    await this.open();
    await this.queued;
    await this.commit.idle(true);
    const { lastId } = await this.o.store.stats();
    if ((await this.o.store.countThrough(lastId)) === 0) return;
    if (this.conn.state === 'unauthorized') throw new ClientError('AUTH_FAILED', 'the hub refused the credentials; pending events stay in the outbox');
    // The session already met (and reported) events of another subject this flush would wait for forever.
    if (this.foreignMin <= lastId) throw new ClientError('SUBJECT_MISMATCH', 'flush() covers events queued under another token subject');
    await new Promise<void>((resolve, reject) => {
      this.waiters.push({ maxId: lastId, resolve, reject });
      // Another tab may be the one draining: look again now and then, not only on our own acks.
      this.pollTimer ??= setInterval(() => void this.checkWaiters(), 250);
    });
  }

  private async checkWaiters(): Promise<void> {
    if (this.checking || !this.waiters.length) return;
    this.checking = true;
    try {
      const done = new Set<FlushWaiter>();
      for (const w of [...this.waiters]) {
        if ((await this.o.store.countThrough(w.maxId)) === 0) {
          done.add(w);
          w.resolve();
        }
      }
      this.waiters = this.waiters.filter((w) => !done.has(w));
    } catch (err) {
      this.sink.error(err as Error);
    } finally {
      this.checking = false;
      if (!this.waiters.length) {
        clearInterval(this.pollTimer);
        this.pollTimer = undefined;
      }
    }
  }

  /** Rejects the flush() calls that cover an event with id >= fromId (all by default). */
  private rejectWaiters(err: Error, fromId = 0): void {
    const keep: FlushWaiter[] = [];
    for (const w of this.waiters) {
      if (w.maxId >= fromId) w.reject(err);
      else keep.push(w);
    }
    this.waiters = keep;
  }

  // ---------- draining (outbox-drain.ts) ----------

  private startSession(): void {
    if (this.closed || !this.lease?.held || !this.conn.isOpen) return;
    const id = ++this.session;
    this.foreignReported = false;
    this.drainer?.wake();
    void (async () => {
      const crc = await batchCrc32c();
      if (!this.drainer || !this.live(id)) return;
      this.foreignMin = Infinity;
      await this.drainer.run(id, crc);
    })().catch((err) => {
      if (!(err instanceof SessionEnded)) this.sink.error(err as Error);
    });
  }

  private endSession(): void {
    this.session++;
    this.foreignMin = Infinity;
    this.drainer?.wake();
  }

  private live(id: number): boolean {
    return this.session === id && !this.closed && this.conn.isOpen && !!this.lease?.held;
  }

  /** Events left the outbox: tell other tabs, let sends waiting for room in, resolve flushes. */
  private left(): void {
    this.signal?.post('drained');
    this.commit.roomMaybe();
    this.wakeRoom();
    void this.checkWaiters();
  }

  private foreign(id: number, minId: number, subject: string): void {
    if (this.session === id) this.foreignMin = Math.min(this.foreignMin, minId);
    if (!this.foreignReported) this.sink.error(new ClientError('SUBJECT_MISMATCH', `the outbox holds events queued under another token subject than "${subject}"; they wait for that subject`));
    this.foreignReported = true;
    this.rejectWaiters(new ClientError('SUBJECT_MISMATCH', 'flush() covers events queued under another token subject'), minId);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.wakeRoom();
    this.endSession();
    this.rejectWaiters(new ClientError('CLOSED', 'client closed before the outbox drained'));
    clearInterval(this.pollTimer);
    // Sends still waiting for room will not get it from this client any more.
    await this.queued;
    await this.commit.idle(true);
    this.commit.close(new ClientError('CLOSED', 'client closed while send() waited for room in the outbox'));
    await this.commit.idle();
    await Promise.allSettled([...(this.drainer?.removing ?? [])]);
    this.lease?.release();
    this.signal?.close();
  }
}
