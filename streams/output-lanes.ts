/**
 * Output lanes: one per (topic, partition, producer id) a task writes, each
 * a buffer of events with dense sequences, written straight into record
 * batch bytes as they are pushed (no object per event), and up to `window` produce
 * requests in flight. Whatever is buffered goes out as soon as a request
 * slot is free (what piles up while requests are in flight becomes the next,
 * bigger request), so outputs stream to the hub while the task keeps
 * processing instead of waiting for the commit interval.
 *
 * Several requests of one lane in flight are safe because the sequences are
 * dense: the requests leave in sequence order over one connection; should a
 * reconnect reorder their retries, the hub refuses the one that skips ahead
 * (SEQUENCE_GAP, retriable, retried) and answers an overlap as a duplicate.
 *
 * A flush asks each lane for its `end()` (the sequence after the last event
 * pushed) and waits for `ackedTo(end)`: everything the snapshot produced is
 * acknowledged, while later events keep flowing.
 */
import { decodeBatch, decodeValue, type Crc32c, type Header, type ValueEncoding } from '../protocol/index.ts';
import { BatchBuilder } from '../web-client/batch-builder.ts';
import type { ReadyClient, SendEvent } from './client-contract.ts';

const NO_HEADERS: readonly Header[] = [];

/** A FIFO counting semaphore: the app-wide cap on produce requests in flight over its one connection. */
export class Slots {
  private free: number;
  private readonly waiters: Array<() => void> = [];

  constructor(readonly size: number) {
    this.free = size;
  }

  /** Takes a slot now (true) or not at all (false). */
  tryTake(): boolean {
    if (this.free === 0) return false;
    this.free--;
    return true;
  }

  /** Calls `fn` once a slot is taken for it, in the order asked. */
  whenFree(fn: () => void): void {
    if (this.tryTake()) fn();
    else this.waiters.push(fn);
  }

  give(): void {
    const next = this.waiters.shift();
    if (next) next();
    else this.free++;
  }
}

export interface LaneSettings {
  client: ReadyClient;
  /** Requests of one lane in flight at once. */
  window: number;
  /** Events per request (one batch) at most. */
  maxRecords: number;
  /**
   * pump() leaves fewer events than this buffered (a flush sends them): each
   * request costs CPU in the client and the hub, so on a busy CPU fewer,
   * bigger requests go further than many small ones.
   */
  minRecords: number;
  timeoutMs: number;
  /** Shared by every lane of the app. */
  slots: Slots;
  /** The batch checksum (the runtime's native CRC-32C when it has one). */
  crc: Crc32c;
  /** Events acknowledged (every lane of the task), for back-pressure. */
  onAcked(n: number): void;
  onFailed(err: Error): void;
}

interface Waiter {
  seq: number;
  resolve: () => void;
  reject: (e: Error) => void;
}

/** A sealed batch waiting for a request slot: its first sequence, record count and bytes. */
interface Sealed {
  seq: number;
  n: number;
  bytes: Uint8Array;
}

/**
 * A batch is sealed at this many bytes even below maxRecords: a request stays
 * far below the hub's frame limit whatever the record sizes.
 */
const LANE_BATCH_BYTES = 1024 * 1024;

export class OutputLane {
  /** The open batch: events are written into their final bytes as they are pushed. */
  private readonly builder: BatchBuilder;
  /** Batches sealed and not yet sent, in sequence order. */
  private sealed: Sealed[] = [];
  /** The sequence after the last event pushed. */
  private next: number;
  private inFlight = 0;
  /** Requests taken off the buffer but waiting for an app-wide slot. */
  private queued = 0;
  /** Every sequence below this is acknowledged (requests complete in order per lane: see settle()). */
  private acked: number;
  /** Acks that came back ahead of an earlier request of the lane: first sequence → [end, offset of its last record]. */
  private readonly early = new Map<number, [number, number]>();
  /** Offset of the record with sequence `acked - 1`; -1 before the first ack. */
  private ackedOffset = -1;
  private waiters: Waiter[] = [];
  private failed: Error | undefined;
  /** Pushed to since the task's last pump (the task's bookkeeping). */
  toPump = false;

  constructor(
    readonly topic: string,
    readonly partition: number,
    readonly producerId: string,
    firstSeq: number,
    private readonly s: LaneSettings,
  ) {
    this.builder = new BatchBuilder(producerId);
    this.next = firstSeq;
    this.acked = firstSeq;
  }

  /**
   * Writes one record into the open batch (value: JSON value, Uint8Array or
   * null). A record the batch format refuses fails the lane (and so the
   * task), as a refused produce request would.
   */
  push(key: string | Uint8Array | null, value: unknown, timestamp: number, headers: readonly Header[]): void {
    try {
      this.builder.add(key, value, timestamp, headers);
    } catch (err) {
      this.fail(err instanceof Error ? err : new Error(String(err)));
      return;
    }
    this.pushed();
  }

  /** push() for a value that is JSON text already. */
  pushJson(key: string | Uint8Array | null, json: string, timestamp: number, headers: readonly Header[] = NO_HEADERS): void {
    try {
      this.builder.addJson(key, json, timestamp, headers);
    } catch (err) {
      this.fail(err instanceof Error ? err : new Error(String(err)));
      return;
    }
    this.pushed();
  }

  /** push() for a value that is the JSON text head + n + tail, head and tail as UTF-8 bytes (BatchBuilder.addJsonNumber). */
  pushJsonNumber(key: string | Uint8Array | null, head: Uint8Array, n: number, tail: Uint8Array, timestamp: number, headers: readonly Header[]): void {
    try {
      this.builder.addJsonNumber(key, head, n, tail, timestamp, headers);
    } catch (err) {
      this.fail(err instanceof Error ? err : new Error(String(err)));
      return;
    }
    this.pushed();
  }

  /** push() for a value as it was stored (a consumed record's bytes and encoding; null: a tombstone). */
  pushEncoded(key: string | Uint8Array | null, bytes: Uint8Array | null, encoding: ValueEncoding, timestamp: number, headers: readonly Header[]): void {
    try {
      this.builder.addEncoded(key, bytes, encoding, timestamp, headers);
    } catch (err) {
      this.fail(err instanceof Error ? err : new Error(String(err)));
      return;
    }
    this.pushed();
  }

  private pushed(): void {
    this.next++;
    if (this.builder.count >= this.s.maxRecords || this.builder.byteLength >= LANE_BATCH_BYTES) this.seal();
  }

  private seal(): void {
    const n = this.builder.count;
    const seq = this.next - n;
    this.sealed.push({ seq, n, bytes: this.builder.seal(seq, this.s.crc) });
  }

  /** The sequence after the last event pushed. */
  end(): number {
    return this.next;
  }

  get unacked(): number {
    return this.next - this.acked;
  }

  /** Sends what is buffered while the lane has a free request slot (`all`: below minRecords too). */
  pump(all = false): void {
    const min = all ? 1 : this.s.minRecords;
    while (!this.failed && this.inFlight + this.queued < this.s.window) {
      if (this.sealed.length === 0) {
        if (this.builder.count < min || this.builder.count === 0) return;
        this.seal();
      }
      const batch = this.sealed.shift()!;
      this.queued++;
      // Slots are granted in request order, so a lane's requests still leave in sequence order.
      this.s.slots.whenFree(() => {
        this.queued--;
        this.inFlight++;
        this.send(batch);
      });
    }
  }

  private send(b: Sealed): void {
    this.s.client.produceBatches(this.topic, this.partition, [b.bytes], { timeoutMs: this.s.timeoutMs }).then(
      (res) => {
        this.inFlight--;
        this.s.slots.give();
        this.settle(b.seq, b.seq + b.n, res.lastOffset);
        this.s.onAcked(b.n);
        this.pump(this.waiters.length > 0);
      },
      (err: unknown) => {
        this.inFlight--;
        this.s.slots.give();
        this.fail(err instanceof Error ? err : new Error(String(err)));
      },
    );
  }

  /** Moves `acked` over [from, to) once every earlier request is acknowledged too. */
  private settle(from: number, to: number, lastOffset: number): void {
    if (from !== this.acked) {
      this.early.set(from, [to, lastOffset]);
      return;
    }
    this.acked = to;
    this.ackedOffset = lastOffset;
    for (let next = this.early.get(this.acked); next !== undefined; next = this.early.get(this.acked)) {
      this.early.delete(this.acked);
      [this.acked, this.ackedOffset] = next;
    }
    if (this.waiters.length === 0) return;
    const still: Waiter[] = [];
    for (const w of this.waiters) {
      if (w.seq <= this.acked) w.resolve();
      else still.push(w);
    }
    this.waiters = still;
  }

  private fail(err: Error): void {
    if (this.failed) return;
    this.failed = err;
    for (const w of this.waiters) w.reject(err);
    this.waiters = [];
    this.s.onFailed(err);
  }

  /** The offset of the last record acknowledged in sequence order (-1 before the first ack). */
  get lastAckedOffset(): number {
    return this.ackedOffset;
  }

  isAckedTo(seq: number): boolean {
    return seq <= this.acked;
  }

  /** The events buffered and not yet sent, with the sequence of the first (decoded back from their batches: for tests and diagnosis). */
  queuedEvents(): { topic: string; partition: number; firstSeq: number; events: readonly SendEvent[] } {
    if (this.builder.count > 0) this.seal();
    const events: SendEvent[] = [];
    for (const b of this.sealed) {
      for (const r of decodeBatch(b.bytes)) {
        const e: SendEvent = { key: r.key, value: decodeValue(r.value, r.encoding), timestamp: r.timestamp };
        if (r.headers.length) e.headers = r.headers;
        // A value written as CBOR says so (one passed through as stored keeps its encoding).
        if (r.encoding === 'cbor') e.encoding = 'cbor';
        events.push(e);
      }
    }
    return { topic: this.topic, partition: this.partition, firstSeq: this.next - events.length, events };
  }

  /** Resolves once every sequence below `seq` is acknowledged (sending what is buffered). */
  ackedTo(seq: number): Promise<void> {
    if (this.failed) return Promise.reject(this.failed);
    if (seq <= this.acked) return Promise.resolve();
    this.pump(true);
    return new Promise((resolve, reject) => this.waiters.push({ seq, resolve, reject }));
  }
}
