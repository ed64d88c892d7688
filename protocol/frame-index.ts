/**
 * A `records` frame read in two halves, for a reader that has a second
 * thread: indexFrame does everything that needs to walk the bytes (each
 * batch's CRC and structure, UTF-8 of keys and headers, the joined JSON text
 * of the values), readIndexedRecords makes the records from that index
 * without walking a byte of structure.
 *
 * Why: replaying history in Chromium, the page's main thread spent a quarter
 * of its time in the portable CRC, the record walk and the copy that joins
 * the values (bench/browser-replay.ts). With the socket in a worker
 * (web-client/worker-socket.ts) the worker runs indexFrame on each frame as
 * it arrives and hands the page the frame's bytes and this index (its
 * arrays transferred, not copied; the joined keys and JSON values as texts
 * decoded in the worker); the page is left with one JSON.parse per frame,
 * one substring per key and the record objects.
 *
 * The checks and results are batch-reader.ts's (a test compares them over
 * random frames): a frame it refuses is refused here with the same code,
 * and joinJson/spreadJson are shared, so a value that is not JSON on its own
 * is handled exactly as readRecords handles it. One difference, stricter:
 * keys and headers of batches wholly below the reader's position are checked
 * as UTF-8 too (the worker does not know the position).
 */
import { batchSizeAt, checkBatch, readHeadersAt, readRecordCount, RecordLayout, walkBatchRecords } from './batch.ts';
import { joinJson, NO_HEADERS, spreadJson, type JoinedJson, type RecordFactory } from './batch-reader.ts';
import type { Crc32c } from './crc32c.ts';
import { TributaryError, type ErrorCode } from './errors.ts';
import { LIMITS } from './limits.ts';
import { fromUtf8, type Header, type RecordKey } from './record.ts';

/** What readIndexedRecords needs of a frame, per record (index i of the frame's records, batches concatenated); positions are into the frame's `b`. Structured-clone safe. */
export interface FrameIndex {
  count: number;
  offsets: Float64Array;
  timestamps: Float64Array;
  attrs: Uint8Array;
  keyStart: Int32Array;
  keyEnd: Int32Array;
  valueStart: Int32Array;
  valueEnd: Int32Array;
  headerStart: Int32Array;
  recordEnd: Int32Array;
  /**
   * The string keys joined, when all are ASCII (a character per byte, so
   * byte lengths are string lengths); null: decode each. Texts, decoded in
   * the indexing thread, not bytes: a string posted to the page arrives as
   * an ordinary V8 string, where the page's own TextDecoder returns one that
   * Blink keeps outside V8's heap, and those cost the page's main thread
   * ~0.6 µs per event in garbage collection (see bench/README.md, h13r).
   */
  keys: string | null;
  /** joinJson's result over the whole frame (decoded as above), and each record's index in it. */
  json: JoinedJson | null;
  jsonAt: Int32Array;
}

/** A frame indexFrame refused: readIndexedRecords throws this. */
export interface FrameFault {
  error: { code: ErrorCode; message: string };
}

const layout = new RecordLayout();
const ascii = new TextDecoder('utf-8');

function fault(code: ErrorCode, message: string): never {
  throw new TributaryError(code, message);
}

/** Walks and checks every batch of `b` (a records frame's bytes) as readRecords does; throws BAD_BATCH / CORRUPT_BATCH as it does. */
export function indexFrame(b: Uint8Array, crc: Crc32c): FrameIndex {
  let total = 0;
  for (let pos = 0; pos < b.length;) {
    const size = batchSizeAt(b, pos);
    if (size < 0 || pos + size > b.length) fault('BAD_BATCH', 'truncated batch in a batch sequence');
    total += Math.min(readRecordCount(b, pos), LIMITS.maxRecordsPerBatch);
    pos += size;
  }
  // One buffer for the per-record arrays (one transfer to the page); the joined keys and JSON values go as strings.
  const buf = new ArrayBuffer(total * (2 * 8 + 7 * 4 + 1));
  let at = 0;
  const f64 = (): Float64Array => new Float64Array(buf, (at += 8 * total) - 8 * total, total);
  const i32 = (): Int32Array => new Int32Array(buf, (at += 4 * total) - 4 * total, total);
  const ix: FrameIndex = {
    count: total,
    offsets: f64(),
    timestamps: f64(),
    keyStart: i32(),
    keyEnd: i32(),
    valueStart: i32(),
    valueEnd: i32(),
    headerStart: i32(),
    recordEnd: i32(),
    jsonAt: i32(),
    attrs: new Uint8Array(buf, (at += total) - total, total),
    keys: null,
    json: null,
  };
  let n = 0;
  for (let pos = 0; pos < b.length;) {
    const size = batchSizeAt(b, pos);
    const bad = checkBatch(b, pos, pos + size, crc, false);
    if (bad) fault(bad === 'bad-crc' ? 'CORRUPT_BATCH' : 'BAD_BATCH', `record batch is ${bad}`);
    const count = readRecordCount(b, pos);
    if (count === 0 || count > LIMITS.maxRecordsPerBatch) fault('BAD_BATCH', 'record batch has malformed records');
    layout.ensure(count);
    // utf8: keys and header strings checked here, so the page decodes them without a failure path.
    if (!walkBatchRecords(b, pos, layout, true)) fault('BAD_BATCH', 'record batch has malformed records');
    ix.offsets.set(layout.offsets.subarray(0, count), n);
    ix.timestamps.set(layout.timestamps.subarray(0, count), n);
    ix.attrs.set(layout.attrs.subarray(0, count), n);
    ix.keyStart.set(layout.keyStart.subarray(0, count), n);
    ix.keyEnd.set(layout.keyEnd.subarray(0, count), n);
    ix.valueStart.set(layout.valueStart.subarray(0, count), n);
    ix.valueEnd.set(layout.valueEnd.subarray(0, count), n);
    ix.headerStart.set(layout.headerStart.subarray(0, count), n);
    ix.recordEnd.set(layout.recordEnd.subarray(0, count), n);
    n += count;
    pos += size;
  }
  ix.keys = joinAsciiKeys(b, ix);
  ix.json = joinJson(b, ix.attrs, ix.valueStart, ix.valueEnd, 0, n, ix.jsonAt);
  return ix;
}

/** Scratch for joinAsciiKeys (grown to the largest frame's keys). */
let keyScratch = new Uint8Array(0);

/** The string keys joined as one text when every one is ASCII; null otherwise. */
function joinAsciiKeys(b: Uint8Array, ix: FrameIndex): string | null {
  const { attrs, keyStart, keyEnd } = ix;
  let total = 0;
  for (let i = 0; i < ix.count; i++) if (((attrs[i] >> 3) & 3) === 1) total += keyEnd[i] - keyStart[i];
  if (keyScratch.length < total) keyScratch = new Uint8Array(Math.max(total, 2 * keyScratch.length));
  const joined = keyScratch.subarray(0, total);
  let o = 0;
  let high = 0;
  for (let i = 0; i < ix.count; i++) {
    if (((attrs[i] >> 3) & 3) !== 1) continue;
    for (let j = keyStart[i], e = keyEnd[i]; j < e; j++) high |= joined[o++] = b[j];
  }
  return high < 0x80 ? ascii.decode(joined) : null;
}

/**
 * The records of an indexed frame at or above `fromOffset`, as readRecords
 * gives them (same values, keys, headers; records with no headers share one
 * frozen empty array, as readRecords' do).
 */
export function readIndexedRecords<T>(b: Uint8Array, ix: FrameIndex | FrameFault, fromOffset: number, make: RecordFactory<T>): T[] {
  if ('error' in ix) throw new TributaryError(ix.error.code, ix.error.message);
  const { count, offsets, timestamps, attrs, keyStart, keyEnd, headerStart, recordEnd } = ix;
  const values = new Array<unknown>(count);
  spreadJson(b, attrs, ix.valueStart, ix.valueEnd, 0, count, ix.json, ix.jsonAt, values);
  const keys = ix.keys;
  const out: T[] = [];
  let k = 0;
  for (let i = 0; i < count; i++) {
    const kind = (attrs[i] >> 3) & 3;
    let key: RecordKey = null;
    if (kind === 1) {
      const len = keyEnd[i] - keyStart[i];
      if (offsets[i] >= fromOffset) key = keys !== null ? keys.substring(k, k + len) : fromUtf8(b.subarray(keyStart[i], keyEnd[i]));
      k += len;
    } else if (kind !== 0) key = b.subarray(keyStart[i], keyEnd[i]);
    if (offsets[i] < fromOffset) continue;
    let headers: Header[] = NO_HEADERS;
    if (headerStart[i] >= 0) headers = readHeadersAt(b, headerStart[i], recordEnd[i])!.headers;
    out.push(make(offsets[i], timestamps[i], key, values[i], headers));
  }
  return out;
}

/** indexFrame, or the fault it threw (for handing to another thread, where readIndexedRecords throws it). */
export function indexFrameOrFault(b: Uint8Array, crc: Crc32c): FrameIndex | FrameFault {
  try {
    return indexFrame(b, crc);
  } catch (err) {
    if (err instanceof TributaryError) return { error: { code: err.code, message: err.message } };
    throw err;
  }
}

/** The buffers of an index, for postMessage's transfer list: one. */
export function indexBuffers(ix: FrameIndex | FrameFault): ArrayBuffer[] {
  return 'error' in ix ? [] : [ix.offsets.buffer as ArrayBuffer];
}
