/**
 * One subscription: a topic's partitions, each with one cursor (the next
 * offset to deliver). Replay and live are the same loop: while the cursor is
 * below the high watermark, read stored batches from the cursor and hand
 * them, as stored, to the sink; when the engine reports a new high watermark,
 * read again. With one cursor there is no seam where a record could be
 * skipped or sent twice.
 *
 * Flow control: byte credit (the client's window; unlimited when the client
 * asked for none) and the sink's writability (the transport's backpressure).
 * At most one read per partition is in flight, its size reserved from credit
 * before it starts, so memory per subscription is bounded by partitions ×
 * readBytes.
 */
import { TributaryError, toTributaryError } from '../../protocol/errors.ts';
import type { LogStore, ReadResult } from '../storage/log-store.ts';
import { stageTiming } from './stage-timing.ts';

/** Where the transport delivers a subscription's output. */
export interface SubscriptionSink {
  /** False while the connection is paused by send-buffer backpressure. */
  writable(): boolean;
  /** Batches read for the subscription: `parts` in order, `size` bytes in all (one buffer from the file engine, one per message from JetStream). */
  records(subId: number, topic: string, partition: number, parts: readonly Uint8Array[], size: number, highWatermark: number): void;
  /** A partition (or, with partition undefined, the whole subscription) failed; the subscription goes on without it. */
  error(subId: number, err: TributaryError, partition?: number): void;
}

export type OutOfRangePolicy = 'earliest' | 'latest' | 'error';

interface Cursor {
  partition: number;
  next: number;
  highWatermark: number;
  reading: boolean;
  failed: boolean;
  /** With TRIBUTARY_DEBUG_STAGES: when the engine last said there is more (stage-timing.ts). */
  wokeAt: number;
}

export interface SubscriptionOptions {
  id: number;
  topic: string;
  /** Explicit partitions, or undefined to follow all (including ones added later). */
  partitions?: number[];
  /** Initial credit in bytes; undefined = unlimited (backpressure only). */
  credit?: number;
  onOutOfRange: OutOfRangePolicy;
  readBytes: number;
}

export class Subscription {
  readonly id: number;
  readonly topic: string;
  readonly followsAllPartitions: boolean;
  private readonly cursors = new Map<number, Cursor>();
  private credit: number;
  private readonly explicitCredit: boolean;
  private scheduled = false;
  private closed = false;
  private started = false;

  constructor(
    private readonly store: LogStore,
    private readonly sink: SubscriptionSink,
    private readonly opts: SubscriptionOptions,
    onSent?: (bytes: number) => void,
  ) {
    this.id = opts.id;
    this.topic = opts.topic;
    this.followsAllPartitions = opts.partitions === undefined;
    this.explicitCredit = opts.credit !== undefined;
    this.credit = opts.credit ?? Number.POSITIVE_INFINITY;
    this.onSent = onSent;
  }

  private readonly onSent?: (bytes: number) => void;

  /** Adds a partition starting at `offset` (before or after start()). */
  addPartition(partition: number, offset: number): void {
    if (this.cursors.has(partition)) return;
    if (!this.closed) this.store.interest?.(this.topic, partition, 1);
    const { highWatermark } = this.store.offsets(this.topic, partition);
    this.cursors.set(partition, { partition, next: offset, highWatermark, reading: false, failed: false, wokeAt: 0 });
    if (this.started) this.schedule();
  }

  /** Stops delivering a partition (a group member gave it up); a read in flight for it is dropped. */
  removePartition(partition: number): void {
    if (this.cursors.delete(partition) && !this.closed) this.store.interest?.(this.topic, partition, -1);
  }

  partitions(): number[] {
    return [...this.cursors.keys()];
  }

  /** Begins delivery (after the transport has answered the subscribe request). */
  start(): void {
    this.started = true;
    for (const c of this.cursors.values()) c.highWatermark = Math.max(c.highWatermark, this.store.offsets(this.topic, c.partition).highWatermark);
    this.schedule();
  }

  /** More bytes of credit from the client. Ignored without explicit credit (there is no window to widen). */
  addCredit(bytes: number): void {
    if (!this.explicitCredit) return;
    this.credit += bytes;
    this.schedule();
  }

  /** The engine's high watermark moved (or the sink became writable again). */
  onHighWatermark(partition: number, highWatermark: number): void {
    const c = this.cursors.get(partition);
    if (!c) return;
    if (highWatermark > c.highWatermark) c.highWatermark = highWatermark;
    if (stageTiming) c.wokeAt = stageTiming.now();
    if (c.next < c.highWatermark) this.schedule();
  }

  /** The sink drained: try again. */
  resume(): void {
    this.schedule();
  }

  close(): void {
    this.release();
  }

  /** Ends this subscription's interest in its partitions (once). */
  private release(): void {
    if (this.closed) return;
    this.closed = true;
    for (const p of this.cursors.keys()) this.store.interest?.(this.topic, p, -1);
  }

  /** The topic is gone: tell the client once, then stop. */
  onTopicDeleted(): void {
    if (this.closed) return;
    this.release();
    this.sink.error(this.id, new TributaryError('UNKNOWN_TOPIC', `topic ${JSON.stringify(this.topic)} was deleted`));
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** Coalesces wake-ups: the engine calls back synchronously from its append path. */
  private schedule(): void {
    if (this.scheduled || this.closed || !this.started) return;
    this.scheduled = true;
    queueMicrotask(() => {
      this.scheduled = false;
      this.pump();
    });
  }

  private pump(): void {
    if (this.closed) return;
    for (const c of this.cursors.values()) {
      if (c.reading || c.failed || c.next >= c.highWatermark) continue;
      if (this.credit <= 0 || !this.sink.writable()) return;
      this.read(c);
    }
  }

  private read(c: Cursor): void {
    const reserve = Math.max(1, Math.min(this.opts.readBytes, this.credit));
    if (this.explicitCredit) this.credit -= reserve;
    // At the tip the batches just made durable are still in memory: deliver them now, without read()'s promise hops.
    const cached = this.store.readCached?.(this.topic, c.partition, c.next, reserve);
    if (cached) {
      try {
        this.delivered(c, reserve, cached);
      } catch (err) {
        this.deliveryFailed(c, err);
      }
      return;
    }
    c.reading = true;
    this.store
      .read(this.topic, c.partition, c.next, reserve)
      .then(
        (res) => {
          c.reading = false;
          this.delivered(c, reserve, res);
        },
        (err: unknown) => {
          c.reading = false;
          if (this.explicitCredit) this.credit += reserve;
          if (this.closed || this.cursors.get(c.partition) !== c) return;
          this.readFailed(c, toTributaryError(err));
        },
      )
      .catch((err: unknown) => this.deliveryFailed(c, err));
  }

  /** Hands a read's batches to the sink and moves the cursor past them. */
  private delivered(c: Cursor, reserve: number, res: ReadResult): void {
    // The engine's own buffers where it has several (JetStream): the frame copies them once, no join first.
    const parts = res.parts ?? [res.bytes];
    let size = 0;
    for (const b of parts) size += b.length;
    if (this.explicitCredit) this.credit += reserve - size;
    if (this.closed || this.cursors.get(c.partition) !== c) return;
    if (res.highWatermark > c.highWatermark) c.highWatermark = res.highWatermark;
    if (size > 0) {
      if (res.nextOffset <= c.next) throw new Error(`read did not advance: ${this.topic}/${c.partition} at ${c.next}`);
      c.next = res.nextOffset;
      this.sink.records(this.id, this.topic, c.partition, parts, size, c.highWatermark);
      if (stageTiming) stageTiming.sent(this.topic, c.partition, res.bytes, c.wokeAt);
      this.onSent?.(size);
    } else if (res.nextOffset > c.next) {
      // Compaction or retention removed everything between: skip ahead.
      c.next = res.nextOffset;
    }
    if (c.next < c.highWatermark) this.schedule();
  }

  /** A sink or invariant failure: end this partition loudly rather than loop. */
  private deliveryFailed(c: Cursor, err: unknown): void {
    c.failed = true;
    this.sink.error(this.id, toTributaryError(err), c.partition);
  }

  private readFailed(c: Cursor, err: TributaryError): void {
    if (err.code === 'OFFSET_OUT_OF_RANGE' && this.opts.onOutOfRange !== 'error') {
      const o = this.store.offsets(this.topic, c.partition);
      const to = this.opts.onOutOfRange === 'earliest' ? o.earliest : o.highWatermark;
      if (to !== c.next) {
        c.next = to;
        this.schedule();
        return;
      }
    }
    if (err.code === 'UNKNOWN_TOPIC') {
      this.release();
      this.sink.error(this.id, err);
      return;
    }
    c.failed = true;
    this.sink.error(this.id, err, c.partition);
  }
}
