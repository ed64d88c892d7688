/**
 * The record batch: the unit that is produced, stored on disk and sent to
 * consumers as the same bytes, never re-encoded between disk and wire.
 * Big-endian, after Kafka's RecordBatch v2, with a producer id string and a sequence delta per record.
 *
 *   off  size  field
 *   0    8     baseOffset        int64   stamped by the hub
 *   8    4     batchLength       int32   bytes after this field
 *   12   1     magic             int8    format version (1)
 *   13   4     crc               uint32  CRC-32C of bytes [17, end)
 *   17   2     attributes        int16   reserved, 0
 *   19   4     recordCount       int32
 *   23   4     lastOffsetDelta   int32   offsets may have gaps after compaction
 *   27   8     firstTimestamp    int64   the first record's timestamp (ms)
 *   35   8     maxTimestamp      int64
 *   43   8     appendTime        int64   stamped by the hub; -1 until then
 *   51   8     baseSequence      int64   -1 for producers without idempotence
 *   59   4     lastSequenceDelta int32
 *   63   1     producerIdLength  uint8
 *   64   n     producerId        UTF-8
 *   64+n       records
 *
 * Each record: length uvarint (bytes after it), attributes u8 (bits 0-1 value
 * encoding 0 bytes/1 json/2 cbor, bit 2 null value, bits 3-4 key kind 0 null/
 * 1 string/2 bytes), offsetDelta uvarint, sequenceDelta uvarint,
 * timestampDelta zig-zag varint, [keyLength uvarint, key], [valueLength
 * uvarint, value], headerCount uvarint, then per header nameLength uvarint,
 * name, kind u8 (0 string, 1 bytes), valueLength uvarint, value.
 *
 * The CRC covers everything from attributes on, including appendTime; the hub
 * recomputes it when it stamps (cheap with native CRC-32C). baseOffset stays
 * outside so that offsets can be assigned without touching the checksum.
 */
import { crc32c as portableCrc32c, type Crc32c } from './crc32c.ts';
import { TributaryError } from './errors.ts';
import { LIMITS } from './limits.ts';
import { ENCODING_CODE, VALUE_ENCODINGS, recordLimitFault, type EncodedRecord, type Header, type StoredRecord, utf8Length, fromUtf8 } from './record.ts';
import { isValidUtf8 } from './cbor-scan.ts';

import { readUvarint, uvarintSize, writeUvarint, zigzag, unzigzag, type VarintRead } from './varint.ts';
import { headerBytes, keyBytes, writeBytes, writeStr } from './record-fields.ts';

export const BATCH_MAGIC = 1;
export const BATCH_HEADER_BYTES = 64; // without the producer id
export const LENGTH_FIELD_END = 12; // baseOffset + batchLength
export const CRC_START = 17;

const O_BASE_OFFSET = 0;
export const O_LENGTH = 8;
const O_MAGIC = 12;
export const O_CRC = 13;
const O_ATTRIBUTES = 17;
const O_COUNT = 19;
const O_LAST_OFFSET_DELTA = 23;
const O_FIRST_TS = 27;
const O_MAX_TS = 35;
export const O_APPEND_TIME = 43;
const O_BASE_SEQ = 51;
const O_LAST_SEQ_DELTA = 59;
const O_PID_LEN = 63;

/** The fixed fields of a batch, read without touching its records. */
export interface BatchHeader {
  baseOffset: number;
  /** Total bytes of the batch, length field included: 12 + batchLength. */
  sizeBytes: number;
  magic: number;
  crc: number;
  attributes: number;
  recordCount: number;
  lastOffsetDelta: number;
  firstTimestamp: number;
  maxTimestamp: number;
  appendTime: number;
  baseSequence: number;
  lastSequenceDelta: number;
  producerId: string;
}

export interface BatchInput {
  producerId?: string;
  /** The first record's sequence, or -1 (default) for no idempotence. */
  baseSequence?: number;
  baseOffset?: number;
  appendTime?: number;
  records: ReadonlyArray<EncodedRecord & { offsetDelta?: number; sequenceDelta?: number }>;
}

// ---------- int64 as two halves: exact for |n| < 2^53 ----------

export function readInt64(b: Uint8Array, pos: number): number {
  const hi = (b[pos] << 24) | (b[pos + 1] << 16) | (b[pos + 2] << 8) | b[pos + 3] | 0;
  const lo = ((b[pos + 4] << 24) | (b[pos + 5] << 16) | (b[pos + 6] << 8) | b[pos + 7]) >>> 0;
  return hi * 4294967296 + lo;
}

export function writeInt64(b: Uint8Array, pos: number, n: number): void {
  const hi = Math.floor(n / 4294967296);
  const lo = n - hi * 4294967296;
  writeUint32(b, pos, hi >>> 0);
  writeUint32(b, pos + 4, lo >>> 0);
}

export function readUint32(b: Uint8Array, pos: number): number {
  return ((b[pos] << 24) | (b[pos + 1] << 16) | (b[pos + 2] << 8) | b[pos + 3]) >>> 0;
}

export function writeUint32(b: Uint8Array, pos: number, n: number): void {
  b[pos] = n >>> 24;
  b[pos + 1] = (n >>> 16) & 0xff;
  b[pos + 2] = (n >>> 8) & 0xff;
  b[pos + 3] = n & 0xff;
}

// ---------- encoding ----------

const textEncoder = new TextEncoder();

/**
 * Encodes records into one batch. Validates the record shapes it needs to
 * (sizes against LIMITS) and throws a TributaryError otherwise.
 */
export function encodeBatch(input: BatchInput, crc: Crc32c = portableCrc32c): Uint8Array {
  const records = input.records;
  const count = records.length;
  if (count === 0) throw new TributaryError('BAD_BATCH', 'a batch needs at least one record');
  if (count > LIMITS.maxRecordsPerBatch) throw new TributaryError('BATCH_TOO_LARGE', `${count} records exceed the limit of ${LIMITS.maxRecordsPerBatch}`);
  const producerId = input.producerId ?? '';
  const pidLen = utf8Length(producerId);
  if (pidLen > LIMITS.maxProducerIdBytes) throw new TributaryError('BAD_RECORD', `producer id longer than ${LIMITS.maxProducerIdBytes} bytes`);
  const baseSequence = input.baseSequence ?? -1;
  const firstTimestamp = records[0].timestamp;

  // First pass: exact sizes, so that the batch is written into one allocation.
  const sizes = new Array<number>(count);
  let total = BATCH_HEADER_BYTES + pidLen;
  let maxTimestamp = firstTimestamp;
  let lastOffsetDelta = 0;
  let lastSequenceDelta = 0;
  for (let i = 0; i < count; i++) {
    const r = records[i];
    const od = r.offsetDelta ?? i;
    const sd = r.sequenceDelta ?? i;
    if (od < lastOffsetDelta || (i > 0 && od === lastOffsetDelta)) throw new TributaryError('BAD_BATCH', 'offset deltas must increase');
    if (sd < lastSequenceDelta || (i > 0 && sd === lastSequenceDelta)) throw new TributaryError('BAD_SEQUENCE', 'sequence deltas must increase');
    lastOffsetDelta = od;
    lastSequenceDelta = sd;
    if (r.timestamp > maxTimestamp) maxTimestamp = r.timestamp;
    const fault = recordLimitFault(r.key, r.value, r.headers);
    if (fault) throw new TributaryError(fault.code, fault.message);
    const kb = keyBytes(r.key);
    const vlen = r.value === null ? 0 : r.value.length;
    let size = 1 + uvarintSize(od) + uvarintSize(sd) + uvarintSize(zigzag(r.timestamp - firstTimestamp)) + kb;
    if (r.value !== null) size += uvarintSize(vlen) + vlen;
    size += uvarintSize(r.headers.length);
    for (const h of r.headers) size += headerBytes(h);
    sizes[i] = size;
    total += uvarintSize(size) + size;
  }
  if (total > LIMITS.maxBatchBytes) throw new TributaryError('FRAME_TOO_LARGE', `batch of ${total} bytes exceeds ${LIMITS.maxBatchBytes}`);

  const buf = new Uint8Array(total);
  let pos = writeBatchHeader(
    buf,
    { total, count, lastOffsetDelta, firstTimestamp, maxTimestamp, lastSequenceDelta, baseSequence, baseOffset: input.baseOffset ?? 0, appendTime: input.appendTime ?? -1 },
    producerId,
    pidLen,
  );
  for (let i = 0; i < count; i++) {
    pos = writeUvarint(buf, pos, sizes[i]);
    pos = writeRecord(buf, pos, records[i], i, firstTimestamp);
  }
  if (pos !== total) throw new Error(`batch size mismatch: wrote ${pos} of ${total}`);
  writeUint32(buf, O_CRC, crc(buf, CRC_START, total));
  return buf;
}

export interface HeaderFields {
  total: number;
  count: number;
  lastOffsetDelta: number;
  firstTimestamp: number;
  maxTimestamp: number;
  lastSequenceDelta: number;
  baseSequence: number;
  baseOffset: number;
  appendTime: number;
}

/** Writes the batch header and the producer id; returns where the records start. The CRC is written last. */
export function writeBatchHeader(buf: Uint8Array, h: HeaderFields, producerId: string, pidLen: number): number {
  writeInt64(buf, O_BASE_OFFSET, h.baseOffset);
  writeUint32(buf, O_LENGTH, h.total - LENGTH_FIELD_END);
  buf[O_MAGIC] = BATCH_MAGIC;
  // Attributes 0, written: the buffer may be reused, not zeroed (web-client/outbox-batch-pool.ts).
  buf[O_ATTRIBUTES] = 0;
  buf[O_ATTRIBUTES + 1] = 0;
  writeUint32(buf, O_COUNT, h.count);
  writeUint32(buf, O_LAST_OFFSET_DELTA, h.lastOffsetDelta);
  writeInt64(buf, O_FIRST_TS, h.firstTimestamp);
  writeInt64(buf, O_MAX_TS, h.maxTimestamp);
  writeInt64(buf, O_APPEND_TIME, h.appendTime);
  writeInt64(buf, O_BASE_SEQ, h.baseSequence);
  writeUint32(buf, O_LAST_SEQ_DELTA, h.lastSequenceDelta);
  buf[O_PID_LEN] = pidLen;
  if (pidLen) textEncoder.encodeInto(producerId, buf.subarray(BATCH_HEADER_BYTES, BATCH_HEADER_BYTES + pidLen));
  return BATCH_HEADER_BYTES + pidLen;
}

/** A record's attributes byte: value encoding, null value, key kind. */
export function recordAttributes(key: EncodedRecord['key'], value: Uint8Array | null, enc: number): number {
  const keyKind = key === null ? 0 : typeof key === 'string' ? 1 : 2;
  return enc | (value === null ? 4 : 0) | (keyKind << 3);
}

/** Writes record `i` (after its length varint); returns the position after it. */
function writeRecord(buf: Uint8Array, pos: number, r: EncodedRecord & { offsetDelta?: number; sequenceDelta?: number }, i: number, firstTimestamp: number): number {
  const enc = ENCODING_CODE[r.encoding];
  if (enc === undefined) throw new TributaryError('BAD_RECORD', `unknown value encoding ${String(r.encoding)}`);
  buf[pos++] = recordAttributes(r.key, r.value, enc);
  pos = writeUvarint(buf, pos, r.offsetDelta ?? i);
  pos = writeUvarint(buf, pos, r.sequenceDelta ?? i);
  pos = writeUvarint(buf, pos, zigzag(r.timestamp - firstTimestamp));
  return writeRecordTail(buf, pos, r.key, r.value, r.headers);
}

/** Key, value and headers of a record: what follows its deltas. */
export function writeRecordTail(buf: Uint8Array, pos: number, key: EncodedRecord['key'], value: Uint8Array | null, headers: readonly Header[]): number {
  if (typeof key === 'string') pos = writeStr(buf, pos, key, utf8Length(key));
  else if (key !== null) pos = writeBytes(buf, pos, key);
  if (value !== null) pos = writeBytes(buf, pos, value);
  pos = writeUvarint(buf, pos, headers.length);
  for (const [name, hv] of headers) {
    pos = writeStr(buf, pos, name, utf8Length(name));
    if (typeof hv === 'string') {
      buf[pos++] = 0;
      pos = writeStr(buf, pos, hv, utf8Length(hv));
    } else {
      buf[pos++] = 1;
      pos = writeBytes(buf, pos, hv);
    }
  }
  return pos;
}

// ---------- reading ----------

/** Size in bytes of the batch starting at `pos`, or -1 if fewer than 12 bytes remain. Does not validate. */
export function batchSizeAt(b: Uint8Array, pos: number): number {
  if (b.length - pos < LENGTH_FIELD_END) return -1;
  return LENGTH_FIELD_END + readUint32(b, pos + O_LENGTH);
}

export function readBatchHeader(b: Uint8Array, pos = 0): BatchHeader {
  const pidLen = b[pos + O_PID_LEN];
  return {
    baseOffset: readInt64(b, pos + O_BASE_OFFSET),
    sizeBytes: LENGTH_FIELD_END + readUint32(b, pos + O_LENGTH),
    magic: b[pos + O_MAGIC],
    crc: readUint32(b, pos + O_CRC),
    attributes: (b[pos + O_ATTRIBUTES] << 8) | b[pos + O_ATTRIBUTES + 1],
    recordCount: readUint32(b, pos + O_COUNT),
    lastOffsetDelta: readUint32(b, pos + O_LAST_OFFSET_DELTA),
    firstTimestamp: readInt64(b, pos + O_FIRST_TS),
    maxTimestamp: readInt64(b, pos + O_MAX_TS),
    appendTime: readInt64(b, pos + O_APPEND_TIME),
    baseSequence: readInt64(b, pos + O_BASE_SEQ),
    lastSequenceDelta: readUint32(b, pos + O_LAST_SEQ_DELTA),
    producerId: pidLen ? fromUtf8(b.subarray(pos + BATCH_HEADER_BYTES, pos + BATCH_HEADER_BYTES + pidLen)) : '',
  };
}

/** Bytes from a batch's start through lastOffsetDelta: enough to tell which offsets it holds. */
export const OFFSET_FIELDS_BYTES = O_FIRST_TS;

export const readBaseOffset = (b: Uint8Array, pos = 0): number => readInt64(b, pos + O_BASE_OFFSET);
export const readLastOffsetDelta = (b: Uint8Array, pos = 0): number => readUint32(b, pos + O_LAST_OFFSET_DELTA);
export const readRecordCount = (b: Uint8Array, pos = 0): number => readUint32(b, pos + O_COUNT);
export const readAppendTime = (b: Uint8Array, pos = 0): number => readInt64(b, pos + O_APPEND_TIME);
export const readFirstTimestamp = (b: Uint8Array, pos = 0): number => readInt64(b, pos + O_FIRST_TS);
export const readLastSequenceDelta = (b: Uint8Array, pos = 0): number => readUint32(b, pos + O_LAST_SEQ_DELTA);
/** The first record's sequence; -1 for a producer without idempotence. */
export const readBaseSequence = (b: Uint8Array, pos = 0): number => readInt64(b, pos + O_BASE_SEQ);
export const readLastSequence = (b: Uint8Array, pos = 0): number => readInt64(b, pos + O_BASE_SEQ) + readUint32(b, pos + O_LAST_SEQ_DELTA);
export const readProducerIdLength = (b: Uint8Array, pos = 0): number => b[pos + O_PID_LEN];
/** The producer id's UTF-8 bytes (empty when none), a view into `b`. */
export const producerIdBytes = (b: Uint8Array, pos = 0): Uint8Array => b.subarray(pos + BATCH_HEADER_BYTES, pos + BATCH_HEADER_BYTES + b[pos + O_PID_LEN]);

/** Stamps base offset and append time in place and recomputes the CRC. */
export function stampBatch(b: Uint8Array, pos: number, baseOffset: number, appendTime: number, crc: Crc32c = portableCrc32c): void {
  writeInt64(b, pos + O_BASE_OFFSET, baseOffset);
  writeInt64(b, pos + O_APPEND_TIME, appendTime);
  const end = pos + LENGTH_FIELD_END + readUint32(b, pos + O_LENGTH);
  writeUint32(b, pos + O_CRC, crc(b, pos + CRC_START, end));
}

/** Why a batch failed validation, or null when it is whole. */
export type BatchFault = null | 'truncated' | 'bad-length' | 'bad-magic' | 'bad-crc' | 'bad-records';

/**
 * Checks the batch at `pos`: length within bounds and the buffer, magic, CRC,
 * and (when `deep`) that the records parse exactly to the end with the counts
 * and deltas the header claims, within LIMITS' sizes, with well-formed UTF-8
 * in string keys and headers: after a deep check, any decoder reads every
 * record. Never throws; never reads past `end`.
 */
export function checkBatch(b: Uint8Array, pos = 0, end = b.length, crc: Crc32c = portableCrc32c, deep = true): BatchFault {
  if (end - pos < LENGTH_FIELD_END) return 'truncated';
  const len = readUint32(b, pos + O_LENGTH);
  if (len < BATCH_HEADER_BYTES - LENGTH_FIELD_END || len > LIMITS.maxBatchBytes) return 'bad-length';
  const size = LENGTH_FIELD_END + len;
  if (end - pos < size) return 'truncated';
  if (b[pos + O_MAGIC] !== BATCH_MAGIC) return 'bad-magic';
  if (crc(b, pos + CRC_START, pos + size) !== readUint32(b, pos + O_CRC)) return 'bad-crc';
  if (!deep) return null;
  return walkBatchRecords(b, pos, null, true) ? null : 'bad-records';
}

const vr: VarintRead = { value: 0, pos: 0 };

/** Where the last walkHeaders call stopped (module state, like `vr`: no allocation per record). */
const walked = { pos: 0 };

const NO_HEADERS: Header[] = [];

/**
 * The header list at `p` (count varint first); null when it does not parse.
 * With `decode` the headers (names and string values decoded as UTF-8,
 * which checks them); else only checks, the UTF-8 too when `utf8`. Sets
 * walked.pos after it.
 */
function walkHeaders(b: Uint8Array, p: number, recEnd: number, decode: boolean, utf8: boolean): Header[] | null {
  readUvarint(b, p, recEnd, vr);
  if (vr.pos < 0 || vr.value > LIMITS.maxHeaders) return null;
  const hcount = vr.value;
  p = vr.pos;
  const headers: Header[] = decode ? [] : NO_HEADERS;
  for (let h = 0; h < hcount; h++) {
    readUvarint(b, p, recEnd, vr);
    if (vr.pos < 0 || vr.pos + vr.value > recEnd || vr.value > LIMITS.maxHeaderNameBytes) return null;
    const nameStart = vr.pos;
    const nameEnd = vr.pos + vr.value;
    p = nameEnd;
    if (p >= recEnd) return null;
    const kind = b[p++];
    if (kind > 1) return null;
    readUvarint(b, p, recEnd, vr);
    if (vr.pos < 0 || vr.pos + vr.value > recEnd || vr.value > LIMITS.maxHeaderValueBytes) return null;
    if (!decode) {
      if (utf8 && (!isValidUtf8(b, nameStart, nameEnd) || (kind === 0 && !isValidUtf8(b, vr.pos, vr.pos + vr.value)))) return null;
    } else {
      try {
        const vb = b.subarray(vr.pos, vr.pos + vr.value);
        headers.push([fromUtf8(b.subarray(nameStart, nameEnd)), kind === 0 ? fromUtf8(vb) : vb]);
      } catch {
        return null;
      }
    }
    p = vr.pos + vr.value;
  }
  walked.pos = p;
  return headers;
}

/**
 * The decoded header list of a record at `p` (its count varint first) and
 * where it ends, or null when it does not parse (names and string values
 * must be UTF-8). For readers that walk records themselves (batch-reader.ts).
 */
export function readHeadersAt(b: Uint8Array, p: number, recEnd: number): { headers: Header[]; end: number } | null {
  const headers = walkHeaders(b, p, recEnd, true, true);
  return headers === null ? null : { headers, end: walked.pos };
}

/**
 * Where each record of a batch lies, as walkBatchRecords finds it: typed
 * arrays the caller owns and reuses (grown to the largest batch seen), so a
 * walk allocates nothing per record. Offsets are absolute; keyStart is -1
 * without a key, valueStart -1 for a null value, headerStart -1 when the
 * record has no headers (the common case), else where its count varint is.
 */
export class RecordLayout {
  capacity = 0;
  attrs = new Uint8Array(0);
  offsets = new Float64Array(0);
  sequenceDeltas = new Float64Array(0);
  timestamps = new Float64Array(0);
  keyStart = new Int32Array(0);
  keyEnd = new Int32Array(0);
  valueStart = new Int32Array(0);
  valueEnd = new Int32Array(0);
  headerStart = new Int32Array(0);
  recordEnd = new Int32Array(0);

  ensure(n: number): void {
    if (n <= this.capacity) return;
    const cap = (this.capacity = Math.max(n, 1024));
    this.attrs = new Uint8Array(cap);
    this.offsets = new Float64Array(cap);
    this.sequenceDeltas = new Float64Array(cap);
    this.timestamps = new Float64Array(cap);
    this.keyStart = new Int32Array(cap);
    this.keyEnd = new Int32Array(cap);
    this.valueStart = new Int32Array(cap);
    this.valueEnd = new Int32Array(cap);
    this.headerStart = new Int32Array(cap);
    this.recordEnd = new Int32Array(cap);
  }
}

/**
 * The one walk over a batch's records (validation, decodeBatch and the
 * consumer's batch-reader.ts all use it, so the format is checked in one
 * place): every length varint within the record and LIMITS, attributes
 * known, offset and sequence deltas increasing up to the header's last
 * deltas, the records ending exactly at the batch's end. When `layout` is
 * given (ensured to the batch's count by the caller) it gets every record's
 * positions. With `utf8`, string keys and header names/string values are
 * checked as UTF-8 here; without, the caller checks them as it decodes.
 * False when the records do not parse exactly. Expects a length-checked batch.
 */
export function walkBatchRecords(b: Uint8Array, pos: number, layout: RecordLayout | null, utf8: boolean): boolean {
  const end = pos + LENGTH_FIELD_END + readUint32(b, pos + O_LENGTH);
  const count = readUint32(b, pos + O_COUNT);
  if (count === 0 || count > LIMITS.maxRecordsPerBatch) return false;
  const baseOffset = readInt64(b, pos + O_BASE_OFFSET);
  const firstTs = readInt64(b, pos + O_FIRST_TS);
  let p = pos + BATCH_HEADER_BYTES + b[pos + O_PID_LEN];
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
    const tsDelta = vr.value;
    p = vr.pos;
    let ks = -1;
    let ke = -1;
    if (keyKind !== 0) {
      readUvarint(b, p, recEnd, vr);
      if (vr.pos < 0 || vr.pos + vr.value > recEnd || vr.value > LIMITS.maxKeyBytes) return false;
      ks = vr.pos;
      p = ke = vr.pos + vr.value;
      if (utf8 && keyKind === 1 && !isValidUtf8(b, ks, ke)) return false;
    }
    let vs = -1;
    let ve = -1;
    if (!(attr & 4)) {
      readUvarint(b, p, recEnd, vr);
      if (vr.pos < 0 || vr.pos + vr.value > recEnd || vr.value > LIMITS.maxValueBytes) return false;
      vs = vr.pos;
      p = ve = vr.pos + vr.value;
    }
    let hs = -1;
    if (p < recEnd && b[p] === 0 && p + 1 === recEnd)
      p = recEnd; // no headers: the common case, no call
    else {
      hs = p;
      if (walkHeaders(b, p, recEnd, false, utf8) === null || walked.pos !== recEnd) return false;
      p = recEnd;
    }
    if (layout !== null) {
      layout.attrs[i] = attr;
      layout.offsets[i] = baseOffset + prevOd;
      layout.sequenceDeltas[i] = prevSd;
      layout.timestamps[i] = firstTs + unzigzag(tsDelta);
      layout.keyStart[i] = ks;
      layout.keyEnd[i] = ke;
      layout.valueStart[i] = vs;
      layout.valueEnd[i] = ve;
      layout.headerStart[i] = hs;
      layout.recordEnd[i] = recEnd;
    }
  }
  return p === end && prevOd === readUint32(b, pos + O_LAST_OFFSET_DELTA) && prevSd === readUint32(b, pos + O_LAST_SEQ_DELTA);
}

/** decodeBatch's layout (module state: decoding is synchronous). */
const decodeLayout = new RecordLayout();

/** The records of a (length-checked) batch as StoredRecords; null when they do not parse. */
function decodeRecords(b: Uint8Array, pos: number): StoredRecord[] | null {
  const L = decodeLayout;
  L.ensure(Math.min(readUint32(b, pos + O_COUNT), LIMITS.maxRecordsPerBatch));
  if (!walkBatchRecords(b, pos, L, false)) return null;
  const count = readUint32(b, pos + O_COUNT);
  const baseSeq = readInt64(b, pos + O_BASE_SEQ);
  const out: StoredRecord[] = [];
  for (let i = 0; i < count; i++) {
    const attr = L.attrs[i];
    let key: StoredRecord['key'] = null;
    if (L.keyStart[i] >= 0) {
      const kb = b.subarray(L.keyStart[i], L.keyEnd[i]);
      if (((attr >> 3) & 3) === 1) {
        try {
          key = fromUtf8(kb);
        } catch {
          return null;
        }
      } else key = kb;
    }
    let headers: Header[] = [];
    if (L.headerStart[i] >= 0) {
      const h = walkHeaders(b, L.headerStart[i], L.recordEnd[i], true, true);
      if (h === null) return null;
      headers = h;
    }
    out.push({
      offset: L.offsets[i],
      sequence: baseSeq < 0 ? -1 : baseSeq + L.sequenceDeltas[i],
      timestamp: L.timestamps[i],
      key,
      value: L.valueStart[i] < 0 ? null : b.subarray(L.valueStart[i], L.valueEnd[i]),
      encoding: VALUE_ENCODINGS[attr & 3],
      headers,
    });
  }
  return out;
}

/**
 * Decodes every record of the batch at `pos`. Keys, values and bytes headers
 * are views into `b`. Throws BAD_BATCH when the batch does not parse.
 */
export function decodeBatch(b: Uint8Array, pos = 0): StoredRecord[] {
  const fault = checkBatch(b, pos, b.length, portableCrc32c, false);
  if (fault) throw new TributaryError(fault === 'bad-crc' ? 'CORRUPT_BATCH' : 'BAD_BATCH', `record batch is ${fault}`);
  const out = decodeRecords(b, pos);
  if (out === null) throw new TributaryError('BAD_BATCH', 'record batch has malformed records');
  return out;
}

/** Decodes records without re-checking the CRC (for bytes that were checked when they arrived). */
export function decodeBatchTrusted(b: Uint8Array, pos = 0): StoredRecord[] {
  const out = decodeRecords(b, pos);
  if (out === null) throw new TributaryError('BAD_BATCH', 'record batch has malformed records');
  return out;
}

/** Iterates over the batches laid end to end in `b` (as a fetch returns them), yielding their start positions. */
export function* batchPositions(b: Uint8Array): Generator<number> {
  let pos = 0;
  while (pos < b.length) {
    const size = batchSizeAt(b, pos);
    if (size < 0 || pos + size > b.length) throw new TributaryError('BAD_BATCH', 'truncated batch in a batch sequence');
    yield pos;
    pos += size;
  }
}

/** Decodes every record of every batch in a concatenation of batches, skipping records below `fromOffset`. */
export function decodeBatches(b: Uint8Array, fromOffset = 0, trusted = false): StoredRecord[] {
  const out: StoredRecord[] = [];
  for (const pos of batchPositions(b)) {
    const recs = trusted ? decodeBatchTrusted(b, pos) : decodeBatch(b, pos);
    for (const r of recs) if (r.offset >= fromOffset) out.push(r);
  }
  return out;
}
