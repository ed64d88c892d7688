/**
 * The producer: puts events into the outbox (group commit) and, in the tab
 * or process that holds the drain lease, drains the outbox to the hub in
 * order.
 *
 * Draining: events are read in append order into one lane per topic. A lane
 * sends one batch at a time (so a retriable refusal can never let a later
 * batch of the same topic overtake an earlier one); lanes of different topics
 * run side by side, at most `maxInFlightBatches` at once. An event leaves the
 * outbox when its ack arrives; a batch the hub refuses for good moves to the
 * failed list and the lane goes on. When the connection drops, the session
 * ends and the next one re-reads the outbox from the start: whatever was in
 * flight is re-sent with the same producer id and sequences, and the hub
 * answers a batch it already appended with the original offsets.
 */
import { TributaryError, ackOffsets, type AckFrame, type ErrorCode } from '../protocol/index.ts';
import type { Connection } from './connection.ts';
import { ClientError } from './errors.ts';
import { toOutboxRecord, type SendEvent } from './event-input.ts';
import { GroupCommit, NO_ROOM, addSkips, wireSequence, type FailedEvent, type NewOutboxEvent, type OutboxBounds, type OutboxEvent, type OutboxStore } from './outbox.ts';
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
}

/** What an `ack` event tells: where each event of one acknowledged batch landed. */
export interface AckInfo {
  topic: string;
  /** True when the hub had appended every record of the batch before (a retry). */
  duplicate: boolean;
  records: Array<{ seq: number; partition: number; offset: number }>;
}

export interface ProducerSink {
  ack(info: AckInfo): void;
  error(err: Error): void;
}

/** Events read ahead of the lanes: enough for a window of full batches per topic, bounded. */
const READ_CHUNK = 4_000;
const READ_AHEAD_MAX = 16_000;
/** Acked events whose removal from the outbox may still be pending while the next batches go out. */
const MAX_PENDING_REMOVAL_EVENTS = 20_000;
/** Produce requests in flight over all topics (the hub allows 64 requests per connection). */
const MAX_IN_FLIGHT_ALL_TOPICS = 32;
/** Room for a produce frame's own fields around its records. */
const FRAME_SLACK_BYTES = 4096;
/** Codes that speak about the connection's credentials, not the batch: the connection handles them. */
const SESSION_CODES = new Set<ErrorCode>(['UNAUTHENTICATED', 'TOKEN_INVALID', 'TOKEN_EXPIRED', 'SUBJECT_CHANGED', 'NOT_HELLO']);
const SHRINK_CODES = new Set<ErrorCode>(['BATCH_TOO_LARGE', 'FRAME_TOO_LARGE', 'BODY_TOO_LARGE']);

interface Lane {
  topic: string;
  events: OutboxEvent[];
  running: boolean;
  maxRecords: number;
  /**
   * Batches this lane may have in flight: 1 when a session starts or after a
   * refusal, doubling with each ack up to maxInFlightBatches (slow start), so
   * that a connection that drops every few kilobytes still gets acks through
   * instead of re-sending a full window each time.
   */
  window: number;
}

interface FlushWaiter {
  maxId: number;
  resolve: () => void;
  reject: (e: Error) => void;
}

class SessionEnded extends Error {}

/** What the lanes of one drain session share. */
interface DrainState {
  id: number;
  /** Events read from the outbox into lanes and not yet acked or refused. */
  buffered: number;
  /** Produce requests awaiting an answer, over all topics. */
  inFlight: number;
  /** Lanes waiting for an in-flight slot. */
  slotWaiters: Array<() => void>;
}

type Outcome = { kind: 'ack'; ack: AckFrame } | { kind: 'refused'; err: TributaryError } | { kind: 'ended' };

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export class Producer {
  private readonly commit: GroupCommit<NewOutboxEvent, OutboxEvent>;
  private producerId = '';
  /** The producer id kept with the outbox (set once the store is open). */
  get id(): string {
    return this.producerId;
  }
  private opened?: Promise<void>;
  private lease?: DrainLease;
  private signal?: OutboxSignal;
  private session = 0;
  private wakeLoader?: () => void;
  private readonly removing = new Set<Promise<void>>();
  private removals: Array<{ events: OutboxEvent[]; info: AckInfo }> = [];
  private removalCount = 0;
  private removalRun?: Promise<void>;
  private waiters: FlushWaiter[] = [];
  private pollTimer?: ReturnType<typeof setInterval>;
  private checking = false;
  private closed = false;
  /** Per topic, outbox sequences refused for good: the wire numbering leaves them out (no gap at the hub). */
  private skips: Record<string, number[]> = {};
  /** Lowest id of an event of another subject met by the current session (Infinity: none). */
  private foreignMin = Infinity;

  constructor(
    private readonly o: ProducerOptions,
    private readonly conn: Connection,
    private readonly sink: ProducerSink,
  ) {
    this.commit = new GroupCommit<NewOutboxEvent, OutboxEvent>(
      async (items) => {
        await this.open();
        const out = await o.store.append(items, o.bounds);
        return out.map((e) => e ?? NO_ROOM);
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
      const { producerId } = await this.o.store.open();
      this.producerId = producerId;
      this.signal = new OutboxSignal(this.o.name, (kind) => {
        if (kind === 'appended') this.wakeLoader?.();
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
  async send(topic: string, event: SendEvent): Promise<void> {
    if (this.closed) throw new ClientError('CLOSED', 'client is closed');
    const entry = this.entry(topic, event, await this.o.subject());
    await this.commit.submit(entry);
    this.appended();
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
    const settled = await Promise.allSettled(this.commit.submitEach(entries));
    const firstRefused = settled.findIndex((r) => r.status === 'rejected');
    if (firstRefused !== 0) this.appended();
    if (firstRefused < 0) return;
    const reason = (settled[firstRefused] as PromiseRejectedResult).reason as Error;
    if (reason instanceof ClientError && reason.code === 'OUTBOX_FULL') {
      throw new ClientError('OUTBOX_FULL', `${reason.message}; ${firstRefused} of ${entries.length} events were queued`, { details: { enqueued: firstRefused } });
    }
    throw reason;
  }

  /** Validates an event into an outbox entry; an event larger than the byte bound could never get in. */
  private entry(topic: string, event: SendEvent, subject: string, now = Date.now()): NewOutboxEvent {
    const { rec, bytes } = toOutboxRecord(topic, event, now);
    if (bytes > this.o.bounds.maxBytes) throw new ClientError('OUTBOX_FULL', `event of ${bytes} bytes exceeds the outbox's maxOutboxBytes (${this.o.bounds.maxBytes})`);
    return { topic, sub: subject, rec, bytes };
  }

  private appended(): void {
    this.wakeLoader?.();
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

  // ---------- draining ----------

  private startSession(): void {
    if (this.closed || !this.lease?.held || !this.conn.isOpen) return;
    const id = ++this.session;
    this.wakeLoader?.();
    void this.runSession(id).catch((err) => {
      if (!(err instanceof SessionEnded)) this.sink.error(err as Error);
    });
  }

  private endSession(): void {
    this.session++;
    this.foreignMin = Infinity;
    this.wakeLoader?.();
  }

  private live(id: number): boolean {
    return this.session === id && !this.closed && this.conn.isOpen && !!this.lease?.held;
  }

  private async runSession(id: number): Promise<void> {
    // Let acks of the previous session finish leaving the outbox, so they are not sent again.
    await Promise.allSettled([...this.removing]);
    this.skips = await this.o.store.skipped();
    if (!this.live(id)) return;
    const subject = this.conn.subject;
    this.foreignMin = Infinity;
    const lanes = new Map<string, Lane>();
    let cursor = 0;
    const st: DrainState = { id, buffered: 0, inFlight: 0, slotWaiters: [] };
    let foreignReported = false;
    const blocked = new Set<string>();

    while (this.live(id)) {
      const woken = new Promise<void>((r) => (this.wakeLoader = r));
      if (st.buffered < READ_AHEAD_MAX - READ_CHUNK) {
        const evs = await this.o.store.read(cursor, READ_CHUNK);
        if (!this.live(id)) break;
        let foreignMin = Infinity;
        for (const e of evs) {
          cursor = e.id;
          // An outbox belongs to one subject: events queued under another wait for that subject's token,
          // and so do this subject's later events of the same topic (their sequences follow the foreign
          // ones': sent first, they would make the hub refuse those as out of order).
          if (e.sub !== subject || blocked.has(e.topic)) {
            blocked.add(e.topic);
            if (e.sub !== subject && e.id < foreignMin) foreignMin = e.id;
            continue;
          }
          let lane = lanes.get(e.topic);
          if (!lane) lanes.set(e.topic, (lane = { topic: e.topic, events: [], running: false, maxRecords: this.o.maxBatchRecords, window: 1 }));
          lane.events.push(e);
          st.buffered++;
        }
        if (foreignMin !== Infinity) {
          if (this.session === id) this.foreignMin = Math.min(this.foreignMin, foreignMin);
          if (!foreignReported) this.sink.error(new ClientError('SUBJECT_MISMATCH', `the outbox holds events queued under another token subject than "${subject}"; they wait for that subject`));
          foreignReported = true;
          this.rejectWaiters(new ClientError('SUBJECT_MISMATCH', 'flush() covers events queued under another token subject'), foreignMin);
        }
        for (const lane of lanes.values()) if (!lane.running && lane.events.length) void this.runLane(lane, st);
        if (evs.length === READ_CHUNK) continue; // more to read while there is room
      }
      await woken;
    }
    for (const w of st.slotWaiters.splice(0)) w();
  }

  private wakeLoaderNow(): void {
    const w = this.wakeLoader;
    this.wakeLoader = undefined;
    w?.();
  }

  /**
   * Drains one topic's lane: up to its window of batches in flight, answers
   * taken in order; a refusal at the head sends back everything behind it, in
   * order (the hub refuses what follows a refused batch as a gap).
   */
  private async runLane(lane: Lane, st: DrainState): Promise<void> {
    lane.running = true;
    // Batches sent and not yet answered, oldest first. The hub appends them in order and refuses
    // (SEQUENCE_GAP) any batch behind one it refused, so a refusal is handled at the head of the window.
    const window: Array<{ batch: OutboxEvent[]; outcome: Promise<Outcome> }> = [];
    let attempt = 0;
    try {
      while ((lane.events.length || window.length) && this.live(st.id)) {
        while (window.length < lane.window && lane.events.length && st.inFlight < MAX_IN_FLIGHT_ALL_TOPICS) {
          const batch = this.takeBatch(lane);
          if (batch.length === 1 && batch[0].bytes + FRAME_SLACK_BYTES > this.conn.maxFrameBytes) {
            if (window.length) {
              lane.events.unshift(...batch); // refuse it once the batches ahead are answered
              break;
            }
            // The hub would close the connection over it (4413) and the re-send would loop: refuse it here.
            st.buffered -= await this.refused(lane, batch, new TributaryError('FRAME_TOO_LARGE', `event of ${batch[0].bytes} bytes exceeds the hub's frame limit of ${this.conn.maxFrameBytes} bytes`));
            continue;
          }
          st.inFlight++;
          const outcome = this.sendOnce(lane.topic, batch).finally(() => {
            st.inFlight--;
            st.slotWaiters.shift()?.();
          });
          window.push({ batch, outcome });
        }
        if (!window.length) {
          if (lane.events.length) await new Promise<void>((r) => st.slotWaiters.push(r));
          continue;
        }
        const head = window.shift()!;
        const out = await head.outcome;
        if (out.kind === 'ended') throw new SessionEnded();
        if (out.kind === 'ack') {
          attempt = 0;
          lane.window = Math.min(this.o.maxInFlightBatches, lane.window * 2);
          st.buffered -= head.batch.length;
          await this.acked(lane.topic, head.batch, out.ack);
          this.wakeLoaderNow();
          continue;
        }
        // Refused: everything behind it comes back refused as a gap (or acked, if it was a retry of
        // batches appended before); what was not acked goes back to the lane, behind the head, in order.
        const behind = await Promise.all(window.splice(0).map(async (w) => ({ batch: w.batch, out: await w.outcome })));
        const back: OutboxEvent[] = [];
        let ended = false;
        for (const w of behind) {
          if (w.out.kind === 'ack') {
            st.buffered -= w.batch.length;
            await this.acked(lane.topic, w.batch, w.out.ack);
          } else {
            if (w.out.kind === 'ended') ended = true;
            for (const e of w.batch) back.push(e);
          }
        }
        lane.events.unshift(...back);
        if (ended) throw new SessionEnded();
        const err = out.err;
        if (err.retriable) {
          lane.window = 1;
          lane.events.unshift(...head.batch);
          const hinted = Number(err.details?.retryAfterMs);
          await sleep(Number.isFinite(hinted) && hinted > 0 ? hinted : Math.random() * Math.min(10_000, 100 * 2 ** attempt));
          attempt++;
          continue;
        }
        st.buffered -= await this.refused(lane, head.batch, err);
        this.wakeLoaderNow();
      }
    } catch (err) {
      if (!(err instanceof SessionEnded)) this.sink.error(err as Error);
    } finally {
      lane.running = false;
    }
  }

  /** Sends one batch; the outcome never rejects (the connection's end is an outcome too). */
  private sendOnce(topic: string, batch: OutboxEvent[]): Promise<Outcome> {
    const seq = wireSequence(batch[0].seq, this.skips[topic]);
    return this.conn.request({ t: 'produce', topic, pid: this.producerId, seq, records: batch.map((e) => e.rec) }).then(
      (ack): Outcome => ({ kind: 'ack', ack: ack as AckFrame }),
      (err): Outcome => {
        if (err instanceof ClientError || !(err instanceof TributaryError) || SESSION_CODES.has(err.code)) return { kind: 'ended' };
        return { kind: 'refused', err };
      },
    );
  }

  /**
   * An acked batch leaves the outbox. The next batches go out meanwhile: the
   * removal is only bookkeeping (a crash before it commits re-sends the
   * batch, which the hub answers as a duplicate). Removals of the acks that
   * arrive while one runs are grouped into the next: one transaction (one
   * fsync) per group, however many batches.
   */
  private async acked(topic: string, batch: OutboxEvent[], ack: AckFrame): Promise<void> {
    const offsets = ackOffsets(ack, batch.length);
    const info: AckInfo = { topic, duplicate: ack.dup === true, records: batch.map((e, i) => ({ seq: e.seq, partition: offsets[i]?.partition ?? -1, offset: offsets[i]?.offset ?? -1 })) };
    this.removals.push({ events: batch, info });
    this.removalCount += batch.length;
    if (!this.removalRun) {
      const run = this.runRemovals();
      this.removalRun = run;
      this.removing.add(run);
      void run.finally(() => this.removing.delete(run));
    }
    // Bounded: past a few batches' worth waiting, wait for the running removal.
    if (this.removalCount > MAX_PENDING_REMOVAL_EVENTS) await this.removalRun;
  }

  private async runRemovals(): Promise<void> {
    try {
      while (this.removals.length) {
        const group = this.removals.splice(0);
        const events: OutboxEvent[] = [];
        for (const g of group) for (const e of g.events) events.push(e);
        try {
          await this.o.store.remove(events);
          for (const g of group) this.sink.ack(g.info);
        } catch (err) {
          this.sink.error(err as Error);
        } finally {
          this.removalCount -= events.length;
        }
        this.signal?.post('drained');
        this.commit.roomMaybe();
        void this.checkWaiters();
      }
    } finally {
      this.removalRun = undefined;
    }
  }

  /** A refusal for good: shrink an oversized batch, fail one bad record, or fail the batch. */
  private async refused(lane: Lane, batch: OutboxEvent[], err: TributaryError): Promise<number> {
    if (SHRINK_CODES.has(err.code) && batch.length > 1) {
      lane.maxRecords = Math.max(1, Math.ceil(batch.length / 2));
      lane.events.unshift(...batch);
      return 0;
    }
    const index = err.details?.index;
    let bad = batch;
    if (typeof index === 'number' && Number.isInteger(index) && index >= 0 && index < batch.length && batch.length > 1) {
      bad = [batch[index]];
      lane.events.unshift(...batch.filter((_, i) => i !== index));
    }
    await this.leave(this.o.store.fail(bad, err.code, err.message));
    // Their sequences were never appended: the events after them take those numbers (the hub refuses gaps).
    addSkips(this.skips, bad);
    const e = new TributaryError(err.code, `${bad.length} event(s) of ${lane.topic} refused for good and moved to failed(): ${err.message}`, { ...err.details, topic: lane.topic, events: bad.length });
    this.sink.error(e);
    return bad.length;
  }

  /** Events of one topic in sequence order, contiguous wire sequences, within the batch bounds. */
  private takeBatch(lane: Lane): OutboxEvent[] {
    const ev = lane.events;
    const skipped = this.skips[lane.topic];
    // Stay well inside the hub's frame limit (it closes the connection over a larger frame).
    const maxBytes = Math.min(this.o.maxBatchBytes, Math.floor((this.conn.maxFrameBytes - FRAME_SLACK_BYTES) * 0.9));
    let n = 1;
    let bytes = ev[0].bytes;
    let wire = wireSequence(ev[0].seq, skipped);
    while (n < ev.length && n < lane.maxRecords && wireSequence(ev[n].seq, skipped) === wire + 1 && bytes + ev[n].bytes <= maxBytes) {
      wire++;
      bytes += ev[n].bytes;
      n++;
    }
    return ev.splice(0, n);
  }

  /** Tracks an outbox removal so a new session waits for it, then tells waiters and other tabs. */
  private async leave(p: Promise<void>): Promise<void> {
    this.removing.add(p);
    try {
      await p;
    } finally {
      this.removing.delete(p);
    }
    this.signal?.post('drained');
    this.commit.roomMaybe();
    void this.checkWaiters();
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
    await Promise.allSettled([...this.removing]);
    this.lease?.release();
    this.signal?.close();
  }
}
