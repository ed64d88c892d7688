/**
 * A records frame as columns: the `onView` delivery form of a subscription,
 * with no object per record.
 *
 * Why: a consumer that moves records on (the PostgreSQL sink writing COPY
 * rows from the stored bytes) spent as much CPU making and collecting a
 * record object (and a lazy value holder) per record as on everything else
 * it did with it. A view is one object per frame: the positions the batch
 * walk finds (offsets, timestamps, where each key, value and header list
 * lies) in typed arrays over the frame's bytes; keys, values and headers are
 * decoded only when asked for, values all at once (one JSON.parse for the
 * frame's JSON values, as readRecords does).
 *
 * The checks are readRecords': each batch's CRC, the structure of every
 * record (batch.ts walkBatchRecords), the UTF-8 of every string key and
 * header (in the walk here, so key(i) and headers(i) cannot fail later), and
 * records below the subscription's position left out.
 *
 * A view handed to onView is valid during the call only: the subscription
 * reuses it for the next frame. keep() makes a copy (bytes and columns) that
 * stays valid, for consumers that hold records past the call.
 */
import {
  batchSizeAt,
  checkBatch,
  crc32c as portableCrc32c,
  fromUtf8,
  joinJson,
  LIMITS,
  NO_HEADERS,
  readBaseOffset,
  readHeadersAt,
  readLastOffsetDelta,
  readRecordCount,
  RecordLayout,
  spreadJson,
  TributaryError,
  walkBatchRecords,
  type Crc32c,
  type Header,
  type RecordKey,
  type ValueEncoding,
} from '../protocol/index.ts';
import type { ConsumedRecord } from './consumer.ts';

const NULL_VALUE = 4;
const ENCODINGS: readonly ValueEncoding[] = ['bytes', 'json', 'cbor'];
/** Records a view has room for before its first frame. */
const VIEW_START_RECORDS = 1024;

/** The walk's positions for one batch (module state: reading is synchronous). */
const layout = new RecordLayout();

/** The records of one `records` frame (one partition, offset order) as columns over the frame's bytes. */
export class RecordsView {
  /** Records in the view. */
  count = 0;
  partition = 0;
  /** The frame's bytes: key, value and header positions are indexes into it. */
  private b: Uint8Array = new Uint8Array(0);
  private attrs = new Uint8Array(0);
  private offsets = new Float64Array(0);
  private timestamps = new Float64Array(0);
  private keyStart = new Int32Array(0);
  private keyEnd = new Int32Array(0);
  private vStart = new Int32Array(0);
  private vEnd = new Int32Array(0);
  private headerStart = new Int32Array(0);
  private recordEnd = new Int32Array(0);
  private values: unknown[] | null = null;

  constructor(
    readonly topic: string,
    capacity = VIEW_START_RECORDS,
  ) {
    if (capacity > 0) this.grow(capacity);
  }

  offset(i: number): number {
    return this.offsets[i];
  }

  timestamp(i: number): number {
    return this.timestamps[i];
  }

  /** The key as the record handler gets it: a string key decoded, a bytes key as a view into the frame, or null. */
  key(i: number): RecordKey {
    const kind = (this.attrs[i] >> 3) & 3;
    if (kind === 0) return null;
    const k = this.b.subarray(this.keyStart[i], this.keyEnd[i]);
    return kind === 1 ? fromUtf8(k) : k;
  }

  /** The frame's bytes, which valueStart/valueEnd index (for readers that scan values in place). */
  get bytes(): Uint8Array {
    return this.b;
  }

  /** Where the value's stored bytes start in `bytes` (-1 for a tombstone). */
  valueStart(i: number): number {
    return this.vStart[i];
  }

  valueEnd(i: number): number {
    return this.vEnd[i];
  }

  /** The value's stored bytes (a view into the frame), null for a tombstone. */
  valueBytes(i: number): Uint8Array | null {
    return this.attrs[i] & NULL_VALUE ? null : this.b.subarray(this.vStart[i], this.vEnd[i]);
  }

  valueEncoding(i: number): ValueEncoding {
    return ENCODINGS[this.attrs[i] & 3];
  }

  /** The value as the record handler gets it; the first call decodes every value of the view (one JSON.parse for the JSON ones). */
  value(i: number): unknown {
    let v = this.values;
    if (v === null) {
      const n = this.count;
      v = this.values = new Array<unknown>(n);
      const at = new Int32Array(n);
      spreadJson(this.b, this.attrs, this.vStart, this.vEnd, 0, n, joinJson(this.b, this.attrs, this.vStart, this.vEnd, 0, n, at), at, v);
    }
    return v[i];
  }

  headers(i: number): Header[] {
    const hs = this.headerStart[i];
    // Checked as UTF-8 in the walk: this parse cannot fail.
    return hs < 0 ? NO_HEADERS : readHeadersAt(this.b, hs, this.recordEnd[i])!.headers;
  }

  /**
   * Record i as the record handler gets it (one object: for the uncommon
   * paths of a consumer that reads columns). Its `value` is a getter, so a
   * record whose value is not read does not decode the view's values.
   */
  record(i: number): ConsumedRecord {
    const view = this;
    return {
      topic: this.topic,
      partition: this.partition,
      offset: this.offsets[i],
      timestamp: this.timestamps[i],
      key: this.key(i),
      get value(): unknown {
        return view.value(i);
      },
      headers: this.headers(i),
      valueBytes: this.valueBytes(i),
      valueEncoding: this.valueEncoding(i),
    };
  }

  /** A copy of records [start, end) (default: all) that stays valid after the call: its own bytes and columns. */
  keep(start = 0, end = this.count): RecordsView {
    return this.copyRange(start, end, this.b.slice());
  }

  /** Records [start, end) of a kept view, sharing its bytes. */
  slice(start: number, end: number): RecordsView {
    return this.copyRange(start, end, this.b);
  }

  private copyRange(start: number, end: number, b: Uint8Array): RecordsView {
    const v = new RecordsView(this.topic, 0);
    v.b = b;
    v.partition = this.partition;
    v.count = end - start;
    v.attrs = this.attrs.slice(start, end);
    v.offsets = this.offsets.slice(start, end);
    v.timestamps = this.timestamps.slice(start, end);
    v.keyStart = this.keyStart.slice(start, end);
    v.keyEnd = this.keyEnd.slice(start, end);
    v.vStart = this.vStart.slice(start, end);
    v.vEnd = this.vEnd.slice(start, end);
    v.headerStart = this.headerStart.slice(start, end);
    v.recordEnd = this.recordEnd.slice(start, end);
    if (this.values) v.values = this.values.slice(start, end);
    return v;
  }

  /** Room for n records, keeping the first `count`. */
  private grow(n: number): void {
    if (n <= this.attrs.length) return;
    const cap = Math.max(n, this.attrs.length * 2);
    const keep = this.count;
    const u8 = (a: Uint8Array<ArrayBuffer>): Uint8Array<ArrayBuffer> => {
      const out = new Uint8Array(cap);
      out.set(a.subarray(0, keep));
      return out;
    };
    const f64 = (a: Float64Array<ArrayBuffer>): Float64Array<ArrayBuffer> => {
      const out = new Float64Array(cap);
      out.set(a.subarray(0, keep));
      return out;
    };
    const i32 = (a: Int32Array<ArrayBuffer>): Int32Array<ArrayBuffer> => {
      const out = new Int32Array(cap);
      out.set(a.subarray(0, keep));
      return out;
    };
    this.attrs = u8(this.attrs);
    this.offsets = f64(this.offsets);
    this.timestamps = f64(this.timestamps);
    this.keyStart = i32(this.keyStart);
    this.keyEnd = i32(this.keyEnd);
    this.vStart = i32(this.vStart);
    this.vEnd = i32(this.vEnd);
    this.headerStart = i32(this.headerStart);
    this.recordEnd = i32(this.recordEnd);
  }

  /**
   * Fills the view with the records at or above `fromOffset` of a frame's
   * batches (`b`, partition `partition`), checked as readRecords checks them:
   * throws BAD_BATCH / CORRUPT_BATCH, and then the view holds nothing.
   */
  read(b: Uint8Array, partition: number, fromOffset: number, crc: Crc32c = portableCrc32c): this {
    this.b = b;
    this.partition = partition;
    this.count = 0;
    this.values = null;
    try {
      let pos = 0;
      while (pos < b.length) {
        const size = batchSizeAt(b, pos);
        this.readBatch(b, pos, size, fromOffset, crc);
        pos += size;
      }
    } catch (err) {
      this.count = 0;
      throw err;
    }
    return this;
  }

  private readBatch(b: Uint8Array, pos: number, size: number, fromOffset: number, crc: Crc32c): void {
    if (size < 0 || pos + size > b.length) throw new TributaryError('BAD_BATCH', 'truncated batch in a batch sequence');
    const fault = checkBatch(b, pos, pos + size, crc, false);
    if (fault) throw new TributaryError(fault === 'bad-crc' ? 'CORRUPT_BATCH' : 'BAD_BATCH', `record batch is ${fault}`);
    const count = readRecordCount(b, pos);
    if (count === 0 || count > LIMITS.maxRecordsPerBatch) throw new TributaryError('BAD_BATCH', 'record batch has malformed records');
    layout.ensure(count);
    // Keys and headers checked as UTF-8 in the walk, below the position too (as readRecords checks them).
    if (!walkBatchRecords(b, pos, layout, true)) throw new TributaryError('BAD_BATCH', 'record batch has malformed records');
    if (readBaseOffset(b, pos) + readLastOffsetDelta(b, pos) < fromOffset) return; // already delivered
    let first = 0;
    while (first < count && layout.offsets[first] < fromOffset) first++;
    const n = this.count;
    this.grow(n + count - first);
    this.attrs.set(layout.attrs.subarray(first, count), n);
    this.offsets.set(layout.offsets.subarray(first, count), n);
    this.timestamps.set(layout.timestamps.subarray(first, count), n);
    this.keyStart.set(layout.keyStart.subarray(first, count), n);
    this.keyEnd.set(layout.keyEnd.subarray(first, count), n);
    this.vStart.set(layout.valueStart.subarray(first, count), n);
    this.vEnd.set(layout.valueEnd.subarray(first, count), n);
    this.headerStart.set(layout.headerStart.subarray(first, count), n);
    this.recordEnd.set(layout.recordEnd.subarray(first, count), n);
    this.count = n + count - first;
  }
}
