/**
 * The consumer's reading of record batches: every record of a `records`
 * frame as application values (keys as strings, JSON values parsed), with
 * the work done per batch where decodeBatch + decodeValue do it per record.
 *
 * Why: replaying history in a browser spent most of its time in per-record
 * calls that cost far more in Chromium than their bytes (a TextDecoder call
 * per key and per value crosses into Blink; a JSON.parse, a depth scan and a
 * StoredRecord with subarrays per record). Here, per batch:
 * - the structure is walked and checked once (as decodeBatch does: CRC per
 *   batch, then every length and delta), positions kept in reused arrays;
 * - string keys are copied into one buffer and decoded with one TextDecoder
 *   call when they are all ASCII (sliced by byte offsets), else one by one;
 * - JSON values that stand alone (balanced, no top-level comma, not ending
 *   in a string, nested at most LIMITS.maxNestingDepth deep: checked on the
 *   bytes while copying them) are joined as `[v1,v2,…]`, decoded as UTF-8
 *   once and parsed by one JSON.parse. Balanced comma-free segments parse
 *   as exactly one element each or not at all, so the array maps 1:1 onto
 *   the records; if the parse fails (a value that is not JSON, bytes that
 *   are not UTF-8), every value of the batch is decoded on its own, with
 *   decodeValue's rules: a value that does not decode is handed over as bytes.
 * The results are the same as decodeBatches + decodeValue's (a test checks).
 */
import {
  batchSizeAt,
  checkBatch,
  readFirstTimestamp,
  readHeadersAt,
  readBaseOffset,
  readLastOffsetDelta,
  readLastSequenceDelta,
  readProducerIdLength,
  readRecordCount,
  BATCH_HEADER_BYTES,
} from './batch.ts';
import { crc32c as portableCrc32c, type Crc32c } from './crc32c.ts';
import { TributaryError } from './errors.ts';
import { LIMITS } from './limits.ts';
import { fromUtf8, type Header, type RecordKey } from './record.ts';
import { decodeValue } from './values.ts';
import { readUvarint, unzigzag, type VarintRead } from './varint.ts';

/** Builds the caller's record object (one allocation per record, the caller's shape). */
export type RecordFactory<T> = (offset: number, timestamp: number, key: RecordKey, value: unknown, headers: Header[]) => T;

const ENC_JSON = 1;
const ENC_CBOR = 2;
const NULL_VALUE = 4;
const vr: VarintRead = { value: 0, pos: 0 };
const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Per-record positions of the batch being read, reused across calls (grown to the largest batch seen). */
let cap = 0;
let offsets = new Float64Array(0);
let timestamps = new Float64Array(0);
let attrs = new Uint8Array(0);
let keyStart = new Int32Array(0);
let keyEnd = new Int32Array(0);
let valueStart = new Int32Array(0);
let valueEnd = new Int32Array(0);
let headerLists: Array<Header[] | null> = [];
let keyOut: RecordKey[] = [];
let valueOut: unknown[] = [];
/** Scratch for joined keys and joined JSON values. */
let keyBytes: Uint8Array<ArrayBuffer> = new Uint8Array(0);
let jsonBytes: Uint8Array<ArrayBuffer> = new Uint8Array(0);

function ensureCapacity(n: number): void {
  if (n <= cap) return;
  cap = Math.max(n, 1024);
  offsets = new Float64Array(cap);
  timestamps = new Float64Array(cap);
  attrs = new Uint8Array(cap);
  keyStart = new Int32Array(cap);
  keyEnd = new Int32Array(cap);
  valueStart = new Int32Array(cap);
  valueEnd = new Int32Array(cap);
  headerLists = new Array<Header[] | null>(cap).fill(null);
  keyOut = new Array<RecordKey>(cap).fill(null);
  valueOut = new Array<unknown>(cap).fill(null);
}

function grow(buf: Uint8Array<ArrayBuffer>, need: number): Uint8Array<ArrayBuffer> {
  return buf.length >= need ? buf : new Uint8Array(Math.max(need, buf.length * 2, 64 * 1024));
}

const NO_HEADERS_COUNT = 0;

/**
 * Walks the records of the (CRC-checked) batch at `pos`, filling the
 * position arrays; false when they do not parse exactly as the header says.
 */
function walk(b: Uint8Array, pos: number, end: number, count: number): boolean {
  const baseOffset = readBaseOffset(b, pos);
  const firstTs = readFirstTimestamp(b, pos);
  let p = pos + BATCH_HEADER_BYTES + readProducerIdLength(b, pos);
  let prevOd = -1;
  let prevSd = -1;
  for (let i = 0; i < count; i++) {
    readUvarint(b, p, end, vr);
    if (vr.pos < 0) return false;
    const recEnd = vr.pos + vr.value;
    if (recEnd > end) return false;
    p = vr.pos;
    if (p >= recEnd) return false;
    const attr = b[p++];
    const keyKind = (attr >> 3) & 3;
    if ((attr & 3) > 2 || keyKind > 2 || attr > 0x1f) return false;
    readUvarint(b, p, recEnd, vr);
    if (vr.pos < 0 || vr.value <= prevOd) return false;
    prevOd = vr.value;
    readUvarint(b, vr.pos, recEnd, vr);
    if (vr.pos < 0 || vr.value <= prevSd) return false;
    prevSd = vr.value;
    readUvarint(b, vr.pos, recEnd, vr);
    if (vr.pos < 0) return false;
    offsets[i] = baseOffset + prevOd;
    timestamps[i] = firstTs + unzigzag(vr.value);
    attrs[i] = attr;
    p = vr.pos;
    if (keyKind !== 0) {
      readUvarint(b, p, recEnd, vr);
      if (vr.pos < 0 || vr.pos + vr.value > recEnd || vr.value > LIMITS.maxKeyBytes) return false;
      keyStart[i] = vr.pos;
      p = keyEnd[i] = vr.pos + vr.value;
    }
    if (!(attr & NULL_VALUE)) {
      readUvarint(b, p, recEnd, vr);
      if (vr.pos < 0 || vr.pos + vr.value > recEnd || vr.value > LIMITS.maxValueBytes) return false;
      valueStart[i] = vr.pos;
      p = valueEnd[i] = vr.pos + vr.value;
    }
    if (p < recEnd && b[p] === NO_HEADERS_COUNT && p + 1 === recEnd) {
      headerLists[i] = null; // the common case: no headers, no call
      p = recEnd;
    } else {
      const h = readHeadersAt(b, p, recEnd);
      if (h === null || h.end !== recEnd) return false;
      headerLists[i] = h.headers;
      p = recEnd;
    }
  }
  return p === end && prevOd === readLastOffsetDelta(b, pos) && prevSd === readLastSequenceDelta(b, pos);
}

/** Decodes the string keys of records [first, count): one TextDecoder call when all are ASCII. False when one is not UTF-8. */
function decodeKeys(b: Uint8Array, first: number, count: number): boolean {
  let total = 0;
  for (let i = first; i < count; i++) if (((attrs[i] >> 3) & 3) === 1) total += keyEnd[i] - keyStart[i];
  keyBytes = grow(keyBytes, total);
  let o = 0;
  let high = 0;
  for (let i = first; i < count; i++) {
    const kind = (attrs[i] >> 3) & 3;
    if (kind !== 1) {
      keyOut[i] = kind === 0 ? null : b.subarray(keyStart[i], keyEnd[i]);
      continue;
    }
    for (let j = keyStart[i], e = keyEnd[i]; j < e; j++) high |= keyBytes[o++] = b[j];
  }
  if (high < 0x80) {
    // ASCII: a character per byte, so byte offsets are string offsets.
    const text = utf8.decode(keyBytes.subarray(0, total));
    o = 0;
    for (let i = first; i < count; i++) {
      if (((attrs[i] >> 3) & 3) !== 1) continue;
      const n = keyEnd[i] - keyStart[i];
      keyOut[i] = text.substring(o, o + n);
      o += n;
    }
    return true;
  }
  for (let i = first; i < count; i++) {
    if (((attrs[i] >> 3) & 3) !== 1) continue;
    try {
      keyOut[i] = fromUtf8(b.subarray(keyStart[i], keyEnd[i]));
    } catch {
      return false;
    }
  }
  return true;
}

/**
 * Copies b[s, e) to jsonBytes at `o` if it is a JSON text that stands alone
 * in an array: balanced, no comma outside brackets and strings, not ending
 * inside a string, at most maxNestingDepth deep. Returns the position after
 * the copy, or -1.
 */
function copyStandalone(b: Uint8Array, s: number, e: number, o: number): number {
  if (s === e) return -1;
  const out = jsonBytes;
  const max = LIMITS.maxNestingDepth;
  let depth = 0;
  let inString = false;
  for (let i = s; i < e; i++) {
    const c = b[i];
    out[o++] = c;
    if (inString) {
      if (c === 0x5c) {
        if (++i === e) return -1;
        out[o++] = b[i];
      } else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x5b || c === 0x7b) {
      if (++depth > max) return -1;
    } else if (c === 0x5d || c === 0x7d) {
      if (--depth < 0) return -1;
    } else if (c === 0x2c && depth === 0) return -1;
  }
  return inString || depth !== 0 ? -1 : o;
}

/** One value as consumers get it: decodeValue's result, or the bytes when they do not decode. */
function valueAlone(b: Uint8Array, i: number): unknown {
  const attr = attrs[i];
  if (attr & NULL_VALUE) return null;
  const bytes = b.subarray(valueStart[i], valueEnd[i]);
  const enc = attr & 3;
  if (enc !== ENC_JSON && enc !== ENC_CBOR) return bytes;
  try {
    return decodeValue(bytes, enc === ENC_JSON ? 'json' : 'cbor');
  } catch {
    return bytes;
  }
}

/** Decodes the values of records [first, count): JSON ones that stand alone with one parse, the rest one by one. */
function decodeValues(b: Uint8Array, first: number, count: number): void {
  let total = 0;
  let jsonCount = 0;
  for (let i = first; i < count; i++) {
    if ((attrs[i] & (NULL_VALUE | 3)) === ENC_JSON) {
      total += valueEnd[i] - valueStart[i] + 1;
      jsonCount++;
    }
  }
  let joined = 0;
  if (jsonCount > 1) {
    jsonBytes = grow(jsonBytes, total + 2);
    let o = 0;
    jsonBytes[o++] = 0x5b; // [
    for (let i = first; i < count; i++) {
      if ((attrs[i] & (NULL_VALUE | 3)) !== ENC_JSON) continue;
      const at = o;
      const next = copyStandalone(b, valueStart[i], valueEnd[i], at);
      if (next < 0) {
        o = at;
        valueOut[i] = undefined;
        continue;
      }
      jsonBytes[next] = 0x2c; // ,
      o = next + 1;
      valueOut[i] = joined++; // its index in the array, replaced below
    }
    if (joined > 0) {
      jsonBytes[o - 1] = 0x5d; // ] over the last comma
      let parsed: unknown;
      try {
        parsed = JSON.parse(utf8.decode(jsonBytes.subarray(0, o)));
      } catch {
        parsed = undefined; // one of them is not JSON (or not UTF-8): each on its own below
      }
      if (Array.isArray(parsed) && parsed.length === joined) {
        for (let i = first; i < count; i++) {
          if ((attrs[i] & (NULL_VALUE | 3)) !== ENC_JSON) valueOut[i] = valueAlone(b, i);
          else if (typeof valueOut[i] === 'number') valueOut[i] = parsed[valueOut[i] as number];
          else valueOut[i] = valueAlone(b, i);
        }
        return;
      }
    }
  }
  for (let i = first; i < count; i++) valueOut[i] = valueAlone(b, i);
}

/**
 * Decodes every record at or above `fromOffset` in a concatenation of
 * batches (a `records` frame's bytes) into `make`'s objects, in order. Each
 * batch's CRC is checked with `crc`. Throws BAD_BATCH / CORRUPT_BATCH as
 * decodeBatch does.
 */
export function readRecords<T>(b: Uint8Array, fromOffset: number, make: RecordFactory<T>, crc: Crc32c = portableCrc32c): T[] {
  const out: T[] = [];
  let pos = 0;
  while (pos < b.length) {
    const size = batchSizeAt(b, pos);
    if (size < 0 || pos + size > b.length) throw new TributaryError('BAD_BATCH', 'truncated batch in a batch sequence');
    const fault = checkBatch(b, pos, pos + size, crc, false);
    if (fault) throw new TributaryError(fault === 'bad-crc' ? 'CORRUPT_BATCH' : 'BAD_BATCH', `record batch is ${fault}`);
    const count = readRecordCount(b, pos);
    if (count === 0 || count > LIMITS.maxRecordsPerBatch) throw new TributaryError('BAD_BATCH', 'record batch has malformed records');
    const end = pos + size;
    const lastOffset = readBaseOffset(b, pos) + readLastOffsetDelta(b, pos);
    pos = end;
    ensureCapacity(count);
    if (!walk(b, end - size, end, count)) throw new TributaryError('BAD_BATCH', 'record batch has malformed records');
    if (lastOffset < fromOffset) continue; // already delivered (after the structure check, as decodeBatch does)
    let first = 0;
    while (first < count && offsets[first] < fromOffset) first++;
    // Every string key is checked (as decodeBatch does), the ones below `first` dropped at once.
    if (!decodeKeys(b, 0, count)) throw new TributaryError('BAD_BATCH', 'record batch has malformed records');
    for (let i = 0; i < first; i++) keyOut[i] = null;
    decodeValues(b, first, count);
    for (let i = first; i < count; i++) {
      out.push(make(offsets[i], timestamps[i], keyOut[i], valueOut[i], headerLists[i] ?? []));
      keyOut[i] = valueOut[i] = null; // drop references: the scratch outlives the frame
      headerLists[i] = null;
    }
  }
  return out;
}
