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
import { GroupCommit, NO_ROOM, type FailedEvent, type NewOutboxEvent, type OutboxBounds, type OutboxStore } from './outbox.ts';
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
  /** The same, when it is known without waiting (no token: ''); undefined otherwise. */
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

interface FlushWaiter {
  maxId: number;
  resolve: () => void;
  reject: (e: Error) => void;
}

export class Producer {
  private readonly commit: GroupCommit<NewOutboxEvent, undefined>;
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

  constructor(
    private readonly o: ProducerOptions,
    private readonly conn: Connection,
    private readonly sink: ProducerSink,
  ) {
    this.commit = new GroupCommit<NewOutboxEvent, undefined>(
      async (items) => {
        await this.open();
        const out = await o.store.append(items, o.bounds);
        // Once per commit, not once per send of a burst.
        if (out.some((e) => e !== null)) this.appended();
        return out.map((e) => (e ? undefined : NO_ROOM));
      },
      {
        maxBlockMs: o.maxBlockMs,
        noRoom: () => new ClientError('OUTBOX_FULL', `outbox is full (max ${o.bounds.maxEvents} events, ${o.bounds.maxBytes} bytes) and did not drain within maxBlockMs (${o.maxBlockMs} ms)`),
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
   */
  send(topic: string, event: SendEvent): Promise<void> {
    if (this.closed) return Promise.reject(new ClientError('CLOSED', 'client is closed'));
    // The subject known at once (no token): the send's promise is the commit's own. The sends of a burst
    // wait for one commit anyway; an async layer and the subject's promise per send only added ticks and garbage.
    const subject = this.o.subjectNow?.();
    if (subject === undefined) return this.sendLater(topic, event);
    try {
      return this.commit.submit(this.entry(topic, event, subject));
    } catch (err) {
      return Promise.reject(err);
    }
  }

  private async sendLater(topic: string, event: SendEvent): Promise<void> {
    const entry = this.entry(topic, event, await this.o.subject());
    await this.commit.submit(entry);
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
    const subject = await this.o.subject();
    const now = Date.now();
    const entries = events.map((e) => this.entry(topic, e, subject, now));
    const { committed, error } = await this.commit.submitAll(entries);
    if (error === undefined) return;
    if (error instanceof ClientError && error.code === 'OUTBOX_FULL') {
      throw new ClientError('OUTBOX_FULL', `${error.message}; ${committed} of ${entries.length} events were queued`, { details: { enqueued: committed } });
    }
    throw error;
  }

  /** Validates an event into an outbox entry; an event larger than the byte bound could never get in. */
  private entry(topic: string, event: SendEvent, subject: string, now = Date.now()): NewOutboxEvent {
    const { rec, bytes, body } = toOutboxRecord(topic, event, now, true);
    if (bytes > this.o.bounds.maxBytes) throw new ClientError('OUTBOX_FULL', `event of ${bytes} bytes exceeds the outbox's maxOutboxBytes (${this.o.bounds.maxBytes})`);
    return { topic, sub: subject, rec, bytes, body };
  }

  private appended(): void {
    this.drainer?.wake();
    this.signal?.post('appended');
  }

  async pending(): Promise<number> {
    await this.open();
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
    this.endSession();
    this.rejectWaiters(new ClientError('CLOSED', 'client closed before the outbox drained'));
    clearInterval(this.pollTimer);
    // Sends still waiting for room will not get it from this client any more.
    await this.commit.idle(true);
    this.commit.close(new ClientError('CLOSED', 'client closed while send() waited for room in the outbox'));
    await this.commit.idle();
    await Promise.allSettled([...(this.drainer?.removing ?? [])]);
    this.lease?.release();
    this.signal?.close();
  }
}
