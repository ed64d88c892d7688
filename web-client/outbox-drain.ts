/**
 * Draining the outbox to the hub in the batch form, one drain session per
 * connection (producer.ts starts them in the tab or process that holds the
 * drain lease).
 *
 * - Lanes per (topic, partition). The client picks each event's partition
 *   (`partitionForKey` of the key from the topic's partition count, learnt
 *   with `metadata`; an explicit partition as given; unkeyed events in runs
 *   of 1024 ids per partition) and the outbox keeps it with the event,
 *   numbered densely per (producer, partition), in one write (`assign`)
 *   before the event first goes on the wire. A resend after a cut, a reload,
 *   a crash or a partition-count change carries the same partition and
 *   sequence, so the hub answers it as a duplicate: nothing is stored twice.
 * - The client encodes each request's record batch (event-input.ts's
 *   `encodeWireBatch`, the encoder `produce()` uses) and the hub stores the
 *   bytes as they are.
 * - Up to `maxInFlightBatches` requests in flight per lane (the full window at
 *   once, or slow start from 1 after a cut with requests in flight and after a
 *   refusal: see `fullStart`). The hub appends them in order
 *   and refuses a request past the next sequence it expects (SEQUENCE_GAP),
 *   so when one is refused the ones behind it are refused too and the lane
 *   sends them again, in order, behind it.
 * - A refusal for good moves the events to the failed list; their sequences
 *   were never appended, so the events behind them go on the wire renumbered
 *   without them (`wireSequence` with the lane's skipped list, stored in the
 *   same write as the failure): no gap.
 * - Events an older client wrote (no `p`: records form, sequences per topic)
 *   drain in the records form under that client's producer id, one lane per
 *   topic, and the topic's newer events wait until they are acked: a resend
 *   of an old request must keep the numbering it was appended under.
 * - A store that holds segments (`OutboxStore.segments`, the memory store)
 *   is read a chunk at a time; a chunk is assigned whole (the same rule as
 *   single events, in id order) and becomes ready batches per partition,
 *   which a lane sends as they are (one request each) and an ack removes
 *   whole. Where a lane needs single events (a refusal, refused-for-good
 *   sequences to renumber around, a halved batch limit), it splits the
 *   segment into events first, and the rules above apply unchanged.
 */

import { TributaryError, murmur2, partitionForKey, partitionForUnkeyed, utf8, type AckFrame, type Crc32c, type ErrorCode } from '../protocol/index.ts';
import type { Connection } from './connection.ts';
import { ClientError } from './errors.ts';
import { encodeOutboxBatch } from './event-input.ts';
import { addSkips, wireSequence, type OutboxEvent, type OutboxStore } from './outbox.ts';
import { isChunk, isSegment, type Chunk, type Segment } from './outbox-segment.ts';
import { batchFrame, frameRoom, hasFrameRoom, segmentFrame } from './outbox-frame.ts';
import { BatchAck, FRAME_SLACK_BYTES, countOf, takeBatch, type Item, type Lane } from './outbox-lane.ts';
import type { AckInfo, ProducerSink } from './producer.ts';

/** Events read ahead of the lanes: enough for a window of full batches on every partition, bounded. */
const READ_CHUNK = 4_000;
const READ_AHEAD_MAX = 32_000;
/** Events assigned partitions in one store write. */
const ASSIGN_MAX = 8_000;
/** Acked events whose removal from the outbox may still be pending while the next batches go out. */
const MAX_PENDING_REMOVAL_EVENTS = 40_000;
/** Keys whose partition hash is remembered. */
const KEY_HASH_CACHE_MAX = 10_000;
/** Produce requests in flight over all lanes (the hub allows 64 requests per connection). */
const MAX_IN_FLIGHT_ALL_LANES = 32;
/**
 * A topic's partition count is asked again after this long before events
 * are assigned (Kafka's metadata.max.age.ms is 5 min): events queued after a
 * partition-count change go by the new count within seconds. One small
 * request per topic at most this often.
 */
const METADATA_MAX_AGE_MS = 5_000;
/** Codes that speak about the connection's credentials, not the batch: the connection handles them. */
const SESSION_CODES = new Set<ErrorCode>(['UNAUTHENTICATED', 'TOKEN_INVALID', 'TOKEN_EXPIRED', 'SUBJECT_CHANGED', 'NOT_HELLO']);
/** Refusals of a batch that one record may cause: halve the batch until that record is alone. */
const SPLIT_CODES = new Set<ErrorCode>(['BATCH_TOO_LARGE', 'FRAME_TOO_LARGE', 'BODY_TOO_LARGE', 'BAD_RECORD', 'RECORD_TOO_LARGE', 'TIMESTAMP_IN_FUTURE', 'BAD_BATCH']);

export interface DrainOptions {
  maxInFlightBatches: number;
  maxBatchRecords: number;
  maxBatchBytes: number;
}

/** What the drain needs from its producer. */
export interface DrainHost {
  readonly store: OutboxStore;
  readonly conn: Connection;
  readonly sink: ProducerSink;
  readonly producerId: string;
  readonly legacyProducerId?: string;
  /** The session is still the current one (connection open, lease held, not closed). */
  live(session: number): boolean;
  /** Events left the outbox (acked or failed): flush waiters, other tabs, sends waiting for room. */
  left(): void;
  /** The session met events of another subject (lowest id `minId`). */
  foreign(session: number, minId: number, subject: string): void;
}

interface TopicState {
  name: string;
  /** Records-form events of an older client, and how many of them are not acked or failed yet. */
  legacy?: Lane;
  legacyLeft: number;
  /** Batch-form events (or chunks) in id order, not yet handed to a partition lane (some not assigned yet). */
  waiting: Array<OutboxEvent | Chunk>;
  feeding: boolean;
  partitions: number;
  partitionsAt: number;
  /** Batch-form lanes by partition. */
  lanes: Lane[];
}

/** What the lanes of one drain session share. */
interface Session {
  id: number;
  buffered: number;
  inFlight: number;
  slotWaiters: Array<() => void>;
  topics: Map<string, TopicState>;
  crc: Crc32c;
  /** Per chunk read but not assigned yet, its events counted in `buffered` (an open chunk may grow until assigned). */
  counted: Map<Chunk, number>;
}

type Outcome = { kind: 'ack'; ack: AckFrame } | { kind: 'refused'; err: TributaryError } | { kind: 'ended' };

export class SessionEnded extends Error {}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const backoffMs = (attempt: number) => Math.random() * Math.min(10_000, 100 * 2 ** attempt);

export class Drainer {
  /** Outbox writes in progress (removals, failures): a new session waits for them. */
  readonly removing = new Set<Promise<unknown>>();
  private removals: Array<{ events: Item[]; info: AckInfo }> = [];
  private removalCount = 0;
  private removalRun?: Promise<void>;
  /** Per lane key, sequences refused for good: the wire numbering leaves them out (no gap at the hub). */
  private skips: Record<string, number[]> = {};
  private wakeLoader?: () => void;
  /**
   * Lanes start with a full window, as a reconnect usually finds a backlog: slow start from one batch
   * cost a drain of 20,000 events three round trips of ramp (fsync each). A session that ended with
   * requests in flight (a cut link) makes the next ones start from one batch, doubling per ack: on a
   * link that drops every few kilobytes a full window re-sent on each connection never got an ack
   * back. A lane that grows back to the full window restores the full start.
   */
  private fullStart = true;
  /** String key → positive murmur2 hash (partitionForKey's rule), bounded. */
  private readonly keyHashes = new Map<string, number>();

  constructor(
    private readonly h: DrainHost,
    private readonly o: DrainOptions,
  ) {}

  /** New events were appended, or the session should look again. */
  wake(): void {
    const w = this.wakeLoader;
    this.wakeLoader = undefined;
    w?.();
  }

  async run(id: number, crc: Crc32c): Promise<void> {
    // Let acks of the previous session finish leaving the outbox, so they are not sent again.
    await Promise.allSettled([...this.removing]);
    this.skips = await this.h.store.skipped();
    if (!this.h.live(id)) return;
    const subject = this.h.conn.subject;
    const st: Session = { id, buffered: 0, inFlight: 0, slotWaiters: [], topics: new Map(), crc, counted: new Map() };
    let cursor = 0;
    let chunkCursor: Chunk | undefined;
    const blocked = new Set<string>();
    const segments = this.h.store.segments;
    while (this.h.live(id)) {
      const woken = new Promise<void>((r) => (this.wakeLoader = r));
      if (segments && st.buffered < READ_AHEAD_MAX - READ_CHUNK) {
        const chunks = segments.readChunks(chunkCursor, READ_CHUNK);
        let foreignMin = Infinity;
        const touched = new Set<TopicState>();
        let n = 0;
        for (const c of chunks) {
          chunkCursor = c;
          if (c.sub !== subject || (blocked.size > 0 && blocked.has(c.topic))) {
            blocked.add(c.topic);
            if (c.sub !== subject && c.id < foreignMin) foreignMin = c.id;
            continue;
          }
          const ts = this.topic(st, c.topic);
          touched.add(ts);
          const live = c.live;
          n += live;
          st.buffered += live;
          if (!c.sealed) st.counted.set(c, live);
          ts.waiting.push(c);
        }
        if (foreignMin !== Infinity) this.h.foreign(id, foreignMin, subject);
        for (const ts of touched) void this.feed(ts, st);
        if (n >= READ_CHUNK) continue;
      } else if (!segments && st.buffered < READ_AHEAD_MAX - READ_CHUNK) {
        const evs = await this.h.store.read(cursor, READ_CHUNK);
        if (!this.h.live(id)) break;
        let foreignMin = Infinity;
        const touched = new Set<TopicState>();
        // Runs of one topic are the rule: its state is looked up once per run, not per event.
        let ts: TopicState | undefined;
        for (const e of evs) {
          cursor = e.id;
          // Events queued under another subject wait for that subject's token, and so do this subject's
          // later events of the same topic (sent first, they would overtake the others per key).
          if (e.sub !== subject || (blocked.size > 0 && blocked.has(e.topic))) {
            blocked.add(e.topic);
            if (e.sub !== subject && e.id < foreignMin) foreignMin = e.id;
            continue;
          }
          if (ts?.name !== e.topic) {
            ts = this.topic(st, e.topic);
            touched.add(ts);
          }
          st.buffered++;
          if (e.p === undefined) {
            ts.legacy ??= this.newLane(e.topic, -1);
            ts.legacy.events.push(e);
            ts.legacyLeft++;
          } else ts.waiting.push(e);
        }
        if (foreignMin !== Infinity) this.h.foreign(id, foreignMin, subject);
        for (const ts of touched) {
          if (ts.legacy && !ts.legacy.running && ts.legacy.events.length) void this.runLane(ts.legacy, st);
          void this.feed(ts, st);
        }
        if (evs.length === READ_CHUNK) continue; // more to read while there is room
      }
      await woken;
    }
    for (const w of st.slotWaiters.splice(0)) w();
  }

  private topic(st: Session, name: string): TopicState {
    let ts = st.topics.get(name);
    if (!ts) st.topics.set(name, (ts = { name, legacyLeft: 0, waiting: [], feeding: false, partitions: 0, partitionsAt: 0, lanes: [] }));
    return ts;
  }

  private newLane(topic: string, p: number): Lane {
    return { topic, p, key: p < 0 ? topic : `${topic}/${p}`, events: [], running: false, maxRecords: this.o.maxBatchRecords, window: this.fullStart ? this.o.maxInFlightBatches : 1 };
  }

  /**
   * Hands a topic's batch-form events to their partition lanes in id order,
   * assigning (and storing) partitions and sequences first where they have
   * none. Waits while the topic still has an older client's events.
   */
  private async feed(ts: TopicState, st: Session): Promise<void> {
    if (ts.feeding) return;
    ts.feeding = true;
    let attempt = 0;
    try {
      while (ts.waiting.length && ts.legacyLeft === 0 && this.h.live(st.id)) {
        let n = 0;
        const waiting = ts.waiting;
        const lanes = ts.lanes;
        for (; n < waiting.length; n++) {
          const e = waiting[n];
          if (isChunk(e)) {
            if (!e.sealed) break;
            // What is left of an assigned chunk (a re-read after a cut: only what was not acked).
            for (const it of e.sealed) (lanes[it.p!] ??= this.newLane(ts.name, it.p!)).events.push(it);
            continue;
          }
          if (e.p === -1) break;
          const p = e.p!;
          const lane = (lanes[p] ??= this.newLane(ts.name, p));
          lane.events.push(e);
        }
        if (n) waiting.splice(0, n);
        for (const lane of lanes) if (lane && !lane.running && lane.events.length) void this.runLane(lane, st);
        if (!ts.waiting.length) break;
        const count = await this.partitionCount(ts, st);
        if (count === 'ended') return;
        if (count === 'failed') continue;
        if (count === 'retry') {
          await sleep(backoffMs(attempt++));
          continue;
        }
        attempt = 0;
        const first = ts.waiting[0];
        if (isChunk(first)) {
          const segments = this.h.store.segments!;
          const counted = st.counted.get(first) ?? 0;
          st.counted.delete(first);
          // The file store's seal resolves once its assignment is on disk: only then may its batches go out.
          await segments.sealChunk(first, count, { maxRecords: this.o.maxBatchRecords, maxBytes: this.maxBatchBytes() }, st.crc);
          if (!this.h.live(st.id)) return;
          // Events appended to the chunk after it was read are drained with it.
          st.buffered += first.live - counted;
          // A chunk failed meanwhile (by a session before) has nothing left to drain here.
          if (!first.sealed) ts.waiting.shift();
          continue;
        }
        // The events before the first chunk, up to ASSIGN_MAX (looked for that far only, not through the read-ahead).
        let chunkAt = 0;
        while (chunkAt < Math.min(ASSIGN_MAX, ts.waiting.length) && !isChunk(ts.waiting[chunkAt])) chunkAt++;
        const head = ts.waiting.slice(0, chunkAt) as OutboxEvent[];
        const assigned = await this.h.store.assign(head.map((e) => ({ event: e, p: this.partitionOf(e, count) })));
        if (!this.h.live(st.id)) return;
        // An event the store no longer holds (it cannot be assigned) is not drained here.
        st.buffered -= head.length - assigned.length;
        ts.waiting.splice(0, head.length, ...assigned);
      }
    } catch (err) {
      if (!(err instanceof SessionEnded)) this.h.sink.error(err as Error);
    } finally {
      ts.feeding = false;
    }
  }

  /** Stay well inside the hub's frame limit (it closes the connection over a larger frame). */
  private maxBatchBytes(): number {
    return Math.min(this.o.maxBatchBytes, Math.floor((this.h.conn.maxFrameBytes - FRAME_SLACK_BYTES) * 0.9));
  }

  private partitionOf(e: OutboxEvent, partitions: number): number {
    if (e.rec.p !== undefined) return e.rec.p;
    const k = e.rec.k;
    if (k === undefined || k === null) return partitionForUnkeyed(this.h.producerId, e.id, partitions);
    if (typeof k !== 'string') return partitionForKey(k, partitions);
    // Keys repeat (users, devices, orders): their hash is kept rather than UTF-8-encoded and hashed per event.
    let h = this.keyHashes.get(k);
    if (h === undefined) {
      if (this.keyHashes.size >= KEY_HASH_CACHE_MAX) this.keyHashes.clear();
      h = murmur2(utf8(k)) & 0x7fffffff;
      this.keyHashes.set(k, h);
    }
    return h % partitions;
  }

  /**
   * The topic's partition count (asked with `create`, so that a topic the
   * first produce would create is created now). A refusal for good fails the
   * topic's unassigned events (they took no sequence, so no skip is needed).
   */
  private async partitionCount(ts: TopicState, st: Session): Promise<number | 'retry' | 'failed' | 'ended'> {
    if (ts.partitions > 0 && Date.now() - ts.partitionsAt < METADATA_MAX_AGE_MS) return ts.partitions;
    let ok: { partitions?: unknown };
    try {
      ok = (await this.h.conn.request({ t: 'metadata', topic: ts.name, create: true })) as { partitions?: unknown };
    } catch (err) {
      if (err instanceof ClientError || !(err instanceof TributaryError) || SESSION_CODES.has(err.code)) return 'ended';
      if (err.retriable) return 'retry';
      const unassigned = (e: OutboxEvent | Chunk) => (isChunk(e) ? !e.sealed : e.p === -1);
      const bad = ts.waiting.filter(unassigned);
      ts.waiting = ts.waiting.filter((e) => !unassigned(e));
      let n = 0;
      for (const e of bad) {
        n += isChunk(e) ? (st.counted.get(e) ?? 0) : 1;
        if (isChunk(e)) st.counted.delete(e);
      }
      await this.fail(bad, err, ts.name);
      st.buffered -= n;
      return 'failed';
    }
    if (!this.h.live(st.id)) return 'ended';
    const n = Number(ok.partitions);
    if (!Number.isInteger(n) || n < 1) return 'retry';
    ts.partitions = n;
    ts.partitionsAt = Date.now();
    return n;
  }

  /**
   * Drains one lane: up to its window of requests in flight, answers taken
   * in order; a refusal at the head sends back everything behind it, in
   * order (the hub refuses what follows a refused request as a gap).
   */
  private async runLane(lane: Lane, st: Session): Promise<void> {
    lane.running = true;
    const window: Array<{ batch: Item[]; outcome: Promise<Outcome> }> = [];
    let attempt = 0;
    try {
      while ((lane.events.length || window.length) && this.h.live(st.id)) {
        while (window.length < lane.window && lane.events.length && st.inFlight < MAX_IN_FLIGHT_ALL_LANES) {
          const batch = this.takeBatch(lane);
          if (batch.length === 1 && !isSegment(batch[0]) && batch[0].bytes + FRAME_SLACK_BYTES > this.h.conn.maxFrameBytes) {
            if (window.length) {
              lane.events.unshift(...batch); // refuse it once the requests ahead are answered
              break;
            }
            // The hub would close the connection over it (4413) and the re-send would loop: refuse it here.
            await this.refused(
              lane,
              batch as OutboxEvent[],
              new TributaryError('FRAME_TOO_LARGE', `event of ${batch[0].bytes} bytes exceeds the hub's frame limit of ${this.h.conn.maxFrameBytes} bytes`),
              st,
            );
            continue;
          }
          st.inFlight++;
          const outcome = this.sendOnce(lane, batch, st.crc).finally(() => {
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
        if (out.kind === 'ended') {
          this.fullStart = false;
          throw new SessionEnded();
        }
        if (out.kind === 'ack') {
          attempt = 0;
          lane.window = Math.min(this.o.maxInFlightBatches, lane.window * 2);
          if (lane.window === this.o.maxInFlightBatches) this.fullStart = true;
          await this.acked(lane, head.batch, out.ack, st);
          continue;
        }
        // Refused: what was sent behind it comes back refused as a gap (or acked, if it was a retry of
        // requests appended before); what was not acked goes back to the lane, behind the head, in order.
        const behind = await Promise.all(window.splice(0).map(async (w) => ({ batch: w.batch, out: await w.outcome })));
        const back: Item[] = [];
        let ended = false;
        for (const w of behind) {
          if (w.out.kind === 'ack') await this.acked(lane, w.batch, w.out.ack, st);
          else {
            if (w.out.kind === 'ended') ended = true;
            for (const e of w.batch) back.push(e);
          }
        }
        lane.events.unshift(...back);
        if (ended) {
          this.fullStart = false;
          throw new SessionEnded();
        }
        const err = out.err;
        lane.window = 1;
        if (err.retriable) {
          lane.events.unshift(...head.batch);
          const hinted = Number(err.details?.retryAfterMs);
          await sleep(Number.isFinite(hinted) && hinted > 0 ? hinted : backoffMs(attempt));
          attempt++;
          continue;
        }
        await this.refused(lane, this.events(head.batch), err, st);
      }
    } catch (err) {
      if (!(err instanceof SessionEnded)) this.h.sink.error(err as Error);
    } finally {
      lane.running = false;
    }
  }

  /** Sends one request; the outcome never rejects (the connection's end is an outcome too). */
  private sendOnce(lane: Lane, batch: Item[], crc: Crc32c): Promise<Outcome> {
    let request: Promise<unknown>;
    try {
      const first = batch[0];
      if (isSegment(first)) {
        // Ready as it is: takeBatch hands out a segment only where its sequences need no renumbering.
        // One segment with room for the frame's fields goes as a view of its own buffer (no copy into a frame).
        if (batch.length === 1 && hasFrameRoom(first, lane.topic)) request = this.h.conn.requestEncoded((id) => segmentFrame(first, lane.topic, lane.p, id));
        else request = this.h.conn.request({ t: 'produce', topic: lane.topic, batches: (batch as Segment[]).map((s) => ({ p: lane.p, b: s.batch })) });
      } else if (lane.p < 0) {
        const seq = wireSequence(first.seq, this.skips[lane.key]);
        request = this.h.conn.request({ t: 'produce', topic: lane.topic, pid: this.h.legacyProducerId ?? this.h.producerId, seq, records: (batch as OutboxEvent[]).map((e) => e.rec) });
      } else {
        const seq = wireSequence(first.seq, this.skips[lane.key]);
        // With room before it for the frame's fields: the frame is a view of the batch's buffer (no copy).
        const b = encodeOutboxBatch(this.h.producerId, seq, batch as OutboxEvent[], crc, frameRoom(lane.topic));
        request = this.h.conn.requestEncoded((id) => batchFrame(b, frameRoom(lane.topic), lane.topic, lane.p, id));
      }
    } catch (err) {
      request = Promise.reject(err);
    }
    return request.then(
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
  private async acked(lane: Lane, batch: Item[], ack: AckFrame, st: Session): Promise<void> {
    let n = 0;
    for (const e of batch) n += countOf(e);
    st.buffered -= n;
    this.removals.push({ events: batch, info: new BatchAck(lane.topic, batch, ack) });
    this.removalCount += n;
    if (!this.removalRun) {
      const run = this.runRemovals();
      this.removalRun = run;
      this.removing.add(run);
      void run.finally(() => this.removing.delete(run));
    }
    if (lane.p < 0) this.legacyDone(lane, n, st);
    this.wake();
    // Bounded: past a few windows' worth waiting, wait for the running removal.
    if (this.removalCount > MAX_PENDING_REMOVAL_EVENTS) await this.removalRun;
  }

  /** An older client's events of a topic left: once none is left, its newer events may go. */
  private legacyDone(lane: Lane, n: number, st: Session): void {
    const ts = st.topics.get(lane.topic);
    if (!ts) return;
    ts.legacyLeft -= n;
    if (ts.legacyLeft <= 0) void this.feed(ts, st);
  }

  private async runRemovals(): Promise<void> {
    // A store that removes synchronously (segments) must not finish before `removalRun` is set.
    await Promise.resolve();
    try {
      while (this.removals.length) {
        const group = this.removals.splice(0);
        const events: Item[] = [];
        let n = 0;
        for (const g of group) {
          for (const e of g.events) {
            events.push(e);
            n += countOf(e);
          }
        }
        try {
          const segments = this.h.store.segments;
          if (segments) await segments.removeItems(events);
          else await this.h.store.remove(events as OutboxEvent[]);
          for (const g of group) this.h.sink.ack(g.info);
        } catch (err) {
          this.h.sink.error(err as Error);
        } finally {
          this.removalCount -= n;
        }
        this.h.left();
      }
    } finally {
      this.removalRun = undefined;
    }
  }

  /** A refusal for good: halve a batch one record may have spoilt, fail one named record, or fail the batch. */
  /** A batch as single events (a segment split up: a refusal speaks about its records one by one). */
  private events(batch: Item[]): OutboxEvent[] {
    if (!isSegment(batch[0])) return batch as OutboxEvent[];
    const out: OutboxEvent[] = [];
    for (const s of batch as Segment[]) for (const e of this.h.store.segments!.splitSegment(s)) out.push(e);
    return out;
  }

  private async refused(lane: Lane, batch: OutboxEvent[], err: TributaryError, st: Session): Promise<void> {
    if (SPLIT_CODES.has(err.code) && batch.length > 1) {
      const index = err.details?.index;
      // The records form names the record: fail it alone, send the rest again.
      if (typeof index === 'number' && Number.isInteger(index) && index >= 0 && index < batch.length) {
        lane.events.unshift(...batch.filter((_, i) => i !== index));
        batch = [batch[index]];
      } else {
        lane.maxRecords = Math.max(1, Math.ceil(batch.length / 2));
        lane.events.unshift(...batch);
        return;
      }
    }
    await this.fail(batch, err, lane.topic);
    st.buffered -= batch.length;
    if (lane.p < 0) this.legacyDone(lane, batch.length, st);
    this.wake();
  }

  /** Moves events to the failed list (their sequences to the skipped list, in the same write) and says so. */
  private async fail(items: Array<OutboxEvent | Chunk>, err: TributaryError, topic: string): Promise<void> {
    if (!items.length) return;
    const segments = this.h.store.segments;
    const p = segments ? Promise.resolve().then(() => segments.failItems(items, err.code, err.message)) : this.h.store.fail(items as OutboxEvent[], err.code, err.message);
    this.removing.add(p);
    try {
      await p;
    } finally {
      this.removing.delete(p);
    }
    // Their sequences were never appended: the events after them take those numbers (the hub refuses gaps).
    const events = items.filter((e): e is OutboxEvent => !isChunk(e));
    addSkips(this.skips, events);
    let n = 0;
    for (const e of items) n += countOf(e);
    this.h.sink.error(new TributaryError(err.code, `${n} event(s) of ${topic} refused for good and moved to failed(): ${err.message}`, { ...err.details, topic, events: n }));
    this.h.left();
  }

  /** The lane's next request (outbox-lane.ts `takeBatch`). */
  private takeBatch(lane: Lane): Item[] {
    return takeBatch(lane, this.skips[lane.key], this.maxBatchBytes(), this.h.conn.maxFrameBytes, (seg) => this.h.store.segments!.splitSegment(seg));
  }
}
