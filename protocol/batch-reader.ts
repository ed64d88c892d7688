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
 *   once and parsed by one JSON.parse, per run of up to JOIN_MAX_BYTES of
 *   values. Balanced comma-free segments parse as exactly one element each
 *   or not at all, so the array maps 1:1 onto the records; if the parse
 *   fails (a value that is not JSON, bytes that are not UTF-8), every value
 *   of the run is decoded on its own, with decodeValue's rules: a value that
 *   does not decode is handed over as bytes.
 * The results are the same as decodeBatches + decodeValue's (a test checks).
 *
 * The structure walk is batch.ts's walkBatchRecords (one walker for the hub's
 * validation, decodeBatch and this), filling a RecordLayout reused across calls.
 *
 * readLazyRecords leaves the values undecoded: each batch's values sit in a
 * BatchValues that decodes all of them (the same one-parse way) the first
 * time one is read, and hands out the raw bytes without decoding, for
 * consumers that move values on as they are (a sink writing JSON text).
 */
import { batchSizeAt, checkBatch, readHeadersAt, readBaseOffset, readLastOffsetDelta, readRecordCount, RecordLayout, walkBatchRecords } from './batch.ts';
import { crc32c as portableCrc32c, type Crc32c } from './crc32c.ts';
import { TributaryError } from './errors.ts';
import { LIMITS } from './limits.ts';
import { fromUtf8, type Header, type RecordKey, type ValueEncoding } from './record.ts';
import { decodeValue } from './values.ts';

/** Builds the caller's record object (one allocation per record, the caller's shape). */
export type RecordFactory<T> = (offset: number, timestamp: number, key: RecordKey, value: unknown, headers: Header[]) => T;
/** As RecordFactory, with the value left in its batch's BatchValues at `index`. */
export type LazyRecordFactory<T> = (offset: number, timestamp: number, key: RecordKey, headers: Header[], values: BatchValues, index: number) => T;

const ENC_JSON = 1;
const ENC_CBOR = 2;
const NULL_VALUE = 4;
const ENCODINGS: readonly ValueEncoding[] = ['bytes', 'json', 'cbor'];
const utf8 = new TextDecoder('utf-8', { fatal: true });
/**
 * The headers of every record that has none: one shared, frozen array, not
 * an allocation per record (most records carry no headers).
 */
export const NO_HEADERS: Header[] = Object.freeze([]) as unknown as Header[];

/**
 * Value (and key) bytes joined and decoded at once at most (about): the joined text
 * stays a young-generation string. V8 puts a string over ~128 KiB in its
 * large-object space, each one fresh pages from the OS: decoding a 10,000-record
 * batch of 100-byte JSON values as one ~1 MB text cost ~40x the CPU of decoding
 * it in ~90 KB parts (~400 vs ~10 ns a value, Node 20), and as much as the parse.
 */
const JOIN_MAX_BYTES = 64 * 1024;

/** Positions of the batch being read, reused across calls (grown to the largest batch seen). */
const layout = new RecordLayout();
let keyOut: RecordKey[] = [];
let valueOut: unknown[] = [];
/** Scratch for joined keys and joined JSON values. */
let keyBytes: Uint8Array<ArrayBuffer> = new Uint8Array(0);
let jsonBytes: Uint8Array<ArrayBuffer> = new Uint8Array(0);

function ensureCapacity(n: number): void {
  if (n <= layout.capacity) return;
  layout.ensure(n);
  keyOut = new Array<RecordKey>(layout.capacity).fill(null);
  valueOut = new Array<unknown>(layout.capacity).fill(null);
}

function grow(buf: Uint8Array<ArrayBuffer>, need: number): Uint8Array<ArrayBuffer> {
  return buf.length >= need ? buf : new Uint8Array(Math.max(need, buf.length * 2, 64 * 1024));
}

/** Decodes the string keys of records [first, count): one TextDecoder call when all are ASCII. False when one is not UTF-8. */
function decodeKeys(b: Uint8Array, first: number, count: number): boolean {
  const { attrs, keyStart, keyEnd } = layout;
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
    // ASCII: a character per byte, so byte offsets are string offsets. One decode per JOIN_MAX_BYTES of keys
    // (see there: 10,000 keys of 36 bytes as one text cost ~150 ns a key, in 64 KiB parts ~13).
    o = 0;
    let text = '';
    let textStart = 0;
    let textEnd = 0;
    for (let i = first; i < count; i++) {
      if (((attrs[i] >> 3) & 3) !== 1) continue;
      const n = keyEnd[i] - keyStart[i];
      if (o + n > textEnd) {
        const at = o;
        textEnd = Math.min(total, Math.max(o + n, o + JOIN_MAX_BYTES));
        text = utf8.decode(keyBytes.subarray(at, textEnd));
        textStart = at;
      }
      keyOut[i] = text.substring(o - textStart, o - textStart + n);
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

/** What a byte is to standsAlone outside strings: 0 nothing, else one of the kinds below. */
const JSON_BYTE_KIND = new Uint8Array(256);
const QUOTE = 1;
const OPEN = 2;
const CLOSE = 3;
const COMMA = 4;
JSON_BYTE_KIND[0x22] = QUOTE;
JSON_BYTE_KIND[0x5b] = JSON_BYTE_KIND[0x7b] = OPEN;
JSON_BYTE_KIND[0x5d] = JSON_BYTE_KIND[0x7d] = CLOSE;
JSON_BYTE_KIND[0x2c] = COMMA;

/**
 * Whether b[s, e) is a JSON text that stands alone in an array: balanced,
 * no comma outside brackets and strings, not ending inside a string, at
 * most maxNestingDepth deep. Why a table and a string loop of its own: most
 * bytes are none of these, and skipping them with one load and one compare
 * (then copying the value with one set) was 1.2-1.8x the speed of a loop
 * that copied and tested each byte (V8, 100-byte JSON events).
 */
function standsAlone(b: Uint8Array, s: number, e: number): boolean {
  if (s === e) return false;
  const max = LIMITS.maxNestingDepth;
  let depth = 0;
  for (let i = s; i < e; i++) {
    const kind = JSON_BYTE_KIND[b[i]];
    if (kind === 0) continue;
    if (kind === QUOTE) {
      // To the closing quote; a backslash takes the byte after it.
      for (i++; ; i++) {
        if (i >= e) return false;
        const c = b[i];
        if (c === 0x22) break;
        if (c === 0x5c) i++;
      }
    } else if (kind === OPEN) {
      if (++depth > max) return false;
    } else if (kind === CLOSE) {
      if (--depth < 0) return false;
    } else if (depth === 0) return false; // a comma outside brackets
  }
  return depth === 0;
}

/**
 * Copies b[s, e) to jsonBytes at `o` if it stands alone (standsAlone). Returns the position after the copy, or -1.
 * A byte loop, not set(b.subarray(s, e)): that allocated a typed array per value, ~96 bytes of the ~640 a
 * stream task's decoded record allocated (the young generation fills, and is scavenged, that much sooner).
 */
function copyStandalone(b: Uint8Array, s: number, e: number, o: number): number {
  if (!standsAlone(b, s, e)) return -1;
  const out = jsonBytes;
  for (let i = s; i < e; i++) out[o++] = b[i];
  return o;
}

/** One value as consumers get it: decodeValue's result, or the bytes when they do not decode. */
export function valueAlone(b: Uint8Array, attr: number, s: number, e: number): unknown {
  if (attr & NULL_VALUE) return null;
  const bytes = b.subarray(s, e);
  const enc = attr & 3;
  if (enc !== ENC_JSON && enc !== ENC_CBOR) return bytes;
  try {
    return decodeValue(bytes, enc === ENC_JSON ? 'json' : 'cbor');
  } catch {
    return bytes;
  }
}

/** The text of `[v1,v2,…]` joined by joinJson, and how many values it holds. */
export interface JoinedJson {
  text: string;
  count: number;
}

/** Bytes of the last joinJsonBytes in jsonBytes[0, joinedBytes). */
let joinedBytes = 0;

/**
 * Joins the JSON values among records [first, count) (positions in `attrs`,
 * `vs`, `ve`) that stand alone (copyStandalone) as `[v1,v2,…]` into the
 * jsonBytes scratch; at[i] is record i's index in that array, or -1 for a
 * value decoded on its own (not JSON, a tombstone, not standing alone).
 * Returns how many were joined: 0 when fewer than two JSON values are in
 * the range or none stands alone (then every value is decoded on its own).
 */
function joinJsonBytes(b: Uint8Array, attrs: Uint8Array, vs: Int32Array, ve: Int32Array, first: number, count: number, at: Int32Array): number {
  let total = 0;
  let jsonCount = 0;
  for (let i = first; i < count; i++) {
    at[i] = -1;
    if ((attrs[i] & (NULL_VALUE | 3)) === ENC_JSON) {
      total += ve[i] - vs[i] + 1;
      jsonCount++;
    }
  }
  if (jsonCount < 2) return 0;
  jsonBytes = grow(jsonBytes, total + 2);
  let o = 0;
  let joined = 0;
  jsonBytes[o++] = 0x5b; // [
  for (let i = first; i < count; i++) {
    if ((attrs[i] & (NULL_VALUE | 3)) !== ENC_JSON) continue;
    const next = copyStandalone(b, vs[i], ve[i], o);
    if (next < 0) continue;
    jsonBytes[next] = 0x2c; // ,
    o = next + 1;
    at[i] = joined++;
  }
  if (joined > 0) jsonBytes[o - 1] = 0x5d; // ] over the last comma
  joinedBytes = o;
  return joined;
}

/** joinJsonBytes' text (null when nothing was joined or the bytes are not UTF-8: then each value on its own). */
function joinedText(bytes: Uint8Array, count: number): JoinedJson | null {
  if (count === 0) return null;
  try {
    return { text: utf8.decode(bytes), count };
  } catch {
    return null;
  }
}

/** joinJsonBytes, as text: see there. */
export function joinJson(b: Uint8Array, attrs: Uint8Array, vs: Int32Array, ve: Int32Array, first: number, count: number, at: Int32Array): JoinedJson | null {
  const joined = joinJsonBytes(b, attrs, vs, ve, first, count, at);
  return joinedText(jsonBytes.subarray(0, joinedBytes), joined);
}

/**
 * Fills out[first, count) with the values of records [first, count): from
 * the joined text's one JSON.parse where at[i] >= 0, the rest one by one
 * (valueAlone). If the joined text does not parse into exactly `count`
 * elements (a value that is not JSON), every value is decoded on its own.
 * Balanced comma-free segments parse as exactly one element each or not at
 * all, so a value like `1],[2` cannot add or shift elements.
 */
export function spreadJson(b: Uint8Array, attrs: Uint8Array, vs: Int32Array, ve: Int32Array, first: number, count: number, joined: JoinedJson | null, at: Int32Array, out: unknown[]): void {
  let parsed: unknown;
  if (joined !== null) {
    try {
      parsed = JSON.parse(joined.text);
    } catch {
      parsed = undefined; // one of them is not JSON: each on its own below
    }
  }
  if (Array.isArray(parsed) && parsed.length === joined!.count) {
    for (let i = first; i < count; i++) {
      const k = at[i];
      out[i] = k >= 0 ? parsed[k] : valueAlone(b, attrs[i], vs[i], ve[i]);
    }
    return;
  }
  for (let i = first; i < count; i++) out[i] = valueAlone(b, attrs[i], vs[i], ve[i]);
}

/** Each record's index in the joined JSON array (scratch, grown with the layout). */
let jsonAt = new Int32Array(0);

/**
 * Decodes the values of records [first, count) into out[first, count): the JSON ones that stand alone
 * with one parse per run of up to JOIN_MAX_BYTES of values, the rest one by one.
 */
function decodeValues(b: Uint8Array, attrs: Uint8Array, vs: Int32Array, ve: Int32Array, first: number, count: number, out: unknown[]): void {
  if (jsonAt.length < count) jsonAt = new Int32Array(Math.max(count, layout.capacity));
  let s = first;
  while (s < count) {
    let e = s;
    for (let bytes = 0; e < count && (e === s || bytes + ve[e] - vs[e] <= JOIN_MAX_BYTES); e++) bytes += ve[e] - vs[e] + 1;
    spreadJson(b, attrs, vs, ve, s, e, joinJson(b, attrs, vs, ve, s, e, jsonAt), jsonAt, out);
    s = e;
  }
}

/**
 * The values of one batch's delivered records, decoded the first time one
 * is read (all together, as readRecords decodes them: one JSON.parse for
 * the JSON ones), or handed out as their bytes (views into the frame) without
 * decoding. Holds the frame's bytes while a record of it is held.
 */
export class BatchValues {
  private decoded: unknown[] | null = null;
  constructor(
    private readonly b: Uint8Array,
    private readonly attrs: Uint8Array,
    private readonly starts: Int32Array,
    private readonly ends: Int32Array,
  ) {}

  /** Record `i`'s value as readRecords gives it (JSON and CBOR decoded, bytes that do not decode as bytes, null for a tombstone). */
  value(i: number): unknown {
    let d = this.decoded;
    if (d === null) {
      const n = this.attrs.length;
      d = this.decoded = new Array<unknown>(n);
      decodeValues(this.b, this.attrs, this.starts, this.ends, 0, n, d);
    }
    return d[i];
  }

  /** Record `i`'s value bytes as stored (a view into the frame), or null for a tombstone. */
  bytes(i: number): Uint8Array | null {
    return this.attrs[i] & NULL_VALUE ? null : this.b.subarray(this.starts[i], this.ends[i]);
  }

  /** How record `i`'s value bytes are encoded. */
  encoding(i: number): ValueEncoding {
    return ENCODINGS[this.attrs[i] & 3];
  }
}

/** Walks, checks and decodes the keys of the batch at `pos`; the index of its first record at or above `fromOffset` (count when none is). */
function readBatch(b: Uint8Array, pos: number, size: number, fromOffset: number, crc: Crc32c): number {
  if (size < 0 || pos + size > b.length) throw new TributaryError('BAD_BATCH', 'truncated batch in a batch sequence');
  const fault = checkBatch(b, pos, pos + size, crc, false);
  if (fault) throw new TributaryError(fault === 'bad-crc' ? 'CORRUPT_BATCH' : 'BAD_BATCH', `record batch is ${fault}`);
  const count = readRecordCount(b, pos);
  if (count === 0 || count > LIMITS.maxRecordsPerBatch) throw new TributaryError('BAD_BATCH', 'record batch has malformed records');
  ensureCapacity(count);
  if (!walkBatchRecords(b, pos, layout, false)) throw new TributaryError('BAD_BATCH', 'record batch has malformed records');
  if (readBaseOffset(b, pos) + readLastOffsetDelta(b, pos) < fromOffset) return count; // already delivered (after the structure check, as decodeBatch does)
  let first = 0;
  while (first < count && layout.offsets[first] < fromOffset) first++;
  // Every string key is checked (as decodeBatch does), the ones below `first` dropped at once.
  if (!decodeKeys(b, 0, count)) throw new TributaryError('BAD_BATCH', 'record batch has malformed records');
  for (let i = 0; i < first; i++) keyOut[i] = null;
  return first;
}

/**
 * Record i's headers (structure checked by the walk; names and string values
 * decoded, so checked as UTF-8, here: a throw discards the whole call's
 * result, so nothing of a malformed frame is handed over).
 */
function headersOf(b: Uint8Array, i: number): Header[] {
  const hs = layout.headerStart[i];
  if (hs < 0) return NO_HEADERS;
  const h = readHeadersAt(b, hs, layout.recordEnd[i]);
  if (h === null) throw new TributaryError('BAD_BATCH', 'record batch has malformed records');
  return h.headers;
}

/**
 * Decodes every record at or above `fromOffset` in a concatenation of
 * batches (a `records` frame's bytes) into `make`'s objects, in order. Each
 * batch's CRC is checked with `crc`. Throws BAD_BATCH / CORRUPT_BATCH as
 * decodeBatch does.
 */
export function readRecords<T>(b: Uint8Array, fromOffset: number, make: RecordFactory<T>, crc: Crc32c = portableCrc32c): T[] {
  const out: T[] = [];
  eachBatch(b, fromOffset, crc, (first, count) => {
    const { offsets, timestamps } = layout;
    decodeValues(b, layout.attrs, layout.valueStart, layout.valueEnd, first, count, valueOut);
    for (let i = first; i < count; i++) {
      out.push(make(offsets[i], timestamps[i], keyOut[i], valueOut[i], headersOf(b, i)));
      keyOut[i] = valueOut[i] = null; // drop references: the scratch outlives the frame
    }
  });
  return out;
}

/**
 * readRecords with the values left undecoded: `make` gets each record's
 * batch's BatchValues and its index there, and decoding happens only when a
 * value is read. The structure, CRC, keys and headers are checked here as
 * readRecords checks them.
 */
export function readLazyRecords<T>(b: Uint8Array, fromOffset: number, make: LazyRecordFactory<T>, crc: Crc32c = portableCrc32c): T[] {
  const out: T[] = [];
  eachBatch(b, fromOffset, crc, (first, count) => {
    const { offsets, timestamps } = layout;
    const values = new BatchValues(b, layout.attrs.slice(first, count), layout.valueStart.slice(first, count), layout.valueEnd.slice(first, count));
    for (let i = first; i < count; i++) {
      out.push(make(offsets[i], timestamps[i], keyOut[i], headersOf(b, i), values, i - first));
      keyOut[i] = null;
    }
  });
  return out;
}

/**
 * Walks a concatenation of batches: each is checked and its keys decoded
 * (readBatch), then `records(first, count)` takes its records from `first`
 * (the first at or above `fromOffset`) out of `layout` and the key scratch.
 */
function eachBatch(b: Uint8Array, fromOffset: number, crc: Crc32c, records: (first: number, count: number) => void): void {
  let pos = 0;
  while (pos < b.length) {
    const size = batchSizeAt(b, pos);
    const first = readBatch(b, pos, size, fromOffset, crc);
    const count = readRecordCount(b, pos);
    pos += size;
    if (first < count) records(first, count);
  }
}
