/**
 * Record bodies: a record encoded once, batched many times.
 *
 * A record's body is the record as a batch holds it (protocol/batch.ts)
 * without what depends on the batch: its length and its offset, sequence
 * and timestamp deltas. That is the attributes byte followed by key, value
 * and headers. A producer that keeps records for a while (the client's
 * outbox) encodes each body once, may store it as it is (the file outbox's
 * journal), and builds every batch by copying bodies (`encodeBodyBatch`).
 */
import { crc32c as portableCrc32c, type Crc32c } from './crc32c.ts';
import { TributaryError } from './errors.ts';
import { LIMITS } from './limits.ts';
import { BATCH_HEADER_BYTES, CRC_START, readHeadersAt, recordAttributes, writeBatchHeader, writeRecordTail, writeUint32 } from './batch.ts';
import { headerBytes, keyBytes, writeBytes, writeStr, writeUtf8Once } from './record-fields.ts';
import { fromUtf8, utf8Length, type EncodedRecord, type EncodingCode, type Header } from './record.ts';
import { readUvarint, uvarintSize, writeUvarint, zigzag, type VarintRead } from './varint.ts';

/** Where the CRC sits in a batch header. */
const O_CRC = 13;

/** Byte size of a record body. */
export function recordBodySize(key: EncodedRecord['key'], value: Uint8Array | null, headers: readonly Header[]): number {
  let size = 1 + keyBytes(key);
  if (value !== null) size += uvarintSize(value.length) + value.length;
  size += uvarintSize(headers.length);
  for (const h of headers) size += headerBytes(h);
  return size;
}

/** Writes a record body (see recordBodySize) at `pos`; returns the position after it. The caller has checked LIMITS. */
export function writeRecordBody(buf: Uint8Array, pos: number, key: EncodedRecord['key'], value: Uint8Array | null, enc: number, headers: readonly Header[]): number {
  buf[pos++] = recordAttributes(key, value, enc);
  return writeRecordTail(buf, pos, key, value, headers);
}

/**
 * Writes a record body whose value is text (JSON) of `textBytes` UTF-8 bytes,
 * encoding it straight into `buf`: no value buffer of its own. Its size is
 * recordBodySize(key, null, headers) + uvarintSize(textBytes) + textBytes.
 */
export function writeTextRecordBody(buf: Uint8Array, pos: number, key: EncodedRecord['key'], text: string, textBytes: number, enc: number, headers: readonly Header[]): number {
  const keyKind = key === null ? 0 : typeof key === 'string' ? 1 : 2;
  buf[pos++] = enc | (keyKind << 3);
  if (typeof key === 'string') pos = writeStr(buf, pos, key, utf8Length(key));
  else if (key !== null) pos = writeBytes(buf, pos, key);
  pos = writeStr(buf, pos, text, textBytes);
  return writeRecordTail(buf, pos, null, null, headers);
}

/**
 * Writes a text-valued record body (`writeTextRecordBody`'s bytes) into
 * `buf` from 0, encoding the text once with the platform's UTF-8 encoder
 * (`encodeInto`, one native pass) instead of measuring it first and copying
 * it char by char (two passes in JS, ~5× the time for a 100-byte JSON text).
 * `buf` must hold recordBodySize(key, null, headers) + 3 * text.length + 5
 * bytes. Returns the body's size and where its value's bytes start, or null
 * when the value's UTF-8 exceeds `maxValueBytes` (nothing valid written).
 */
export function writeTextRecordBodyInto(
  buf: Uint8Array,
  key: EncodedRecord['key'],
  text: string,
  enc: number,
  headers: readonly Header[],
  maxValueBytes: number,
): { size: number; valueAt: number; valueBytes: number } | null {
  const keyKind = key === null ? 0 : typeof key === 'string' ? 1 : 2;
  buf[0] = enc | (keyKind << 3);
  let pos = 1;
  if (typeof key === 'string') pos = writeStr(buf, pos, key, utf8Length(key));
  else if (key !== null) pos = writeBytes(buf, pos, key);
  const written = writeUtf8Once(buf, pos, text, maxValueBytes);
  if (written < 0) return null;
  const at = pos + uvarintSize(written);
  pos = writeRecordTail(buf, at + written, null, null, headers);
  return { size: pos, valueAt: at, valueBytes: written };
}

/**
 * `writeTextRecordBodyInto` at `start` of a larger buffer (an outbox chunk's,
 * which holds many bodies): no view per body. `buf` must hold `start` +
 * recordBodySize(key, null, headers) + 3 * text.length + 5 bytes. Returns
 * the value's UTF-8 bytes (the body is recordBodySize(key, null, headers) +
 * uvarintSize(that) + that long), or -1 when it exceeds `maxValueBytes`.
 */
export function writeTextRecordBodyAt(buf: Uint8Array, start: number, key: EncodedRecord['key'], text: string, enc: number, headers: readonly Header[], maxValueBytes: number): number {
  const keyKind = key === null ? 0 : typeof key === 'string' ? 1 : 2;
  buf[start] = enc | (keyKind << 3);
  let pos = start + 1;
  if (typeof key === 'string') pos = writeStr(buf, pos, key, utf8Length(key));
  else if (key !== null) pos = writeBytes(buf, pos, key);
  const written = writeUtf8Once(buf, pos, text, maxValueBytes);
  if (written < 0) return -1;
  writeRecordTail(buf, pos + uvarintSize(written) + written, null, null, headers);
  return written;
}

/**
 * One batch from record bodies and their timestamps: record i gets offset
 * and sequence delta i. One allocation, one CRC; each body is copied once.
 */
export function encodeBodyBatch(producerId: string, baseSequence: number, bodies: readonly Uint8Array[], timestamps: readonly number[], crc: Crc32c = portableCrc32c, room = 0): Uint8Array {
  const count = bodies.length;
  if (count === 0) throw new TributaryError('BAD_BATCH', 'a batch needs at least one record');
  if (count > LIMITS.maxRecordsPerBatch) throw new TributaryError('BATCH_TOO_LARGE', `${count} records exceed the limit of ${LIMITS.maxRecordsPerBatch}`);
  const pidLen = utf8Length(producerId);
  if (pidLen > LIMITS.maxProducerIdBytes) throw new TributaryError('BAD_RECORD', `producer id longer than ${LIMITS.maxProducerIdBytes} bytes`);
  const firstTimestamp = timestamps[0];
  let maxTimestamp = firstTimestamp;
  let total = BATCH_HEADER_BYTES + pidLen;
  for (let i = 0; i < count; i++) {
    const ts = timestamps[i];
    if (ts > maxTimestamp) maxTimestamp = ts;
    const d = uvarintSize(i);
    const size = bodies[i].length + d + d + uvarintSize(zigzag(ts - firstTimestamp));
    total += uvarintSize(size) + size;
  }
  if (total > LIMITS.maxBatchBytes) throw new TributaryError('FRAME_TOO_LARGE', `batch of ${total} bytes exceeds ${LIMITS.maxBatchBytes}`);
  // `room` bytes before the batch in its buffer, for a frame's fields written there later (no copy into a frame).
  const buf = room ? new Uint8Array(room + total).subarray(room) : new Uint8Array(total);
  let pos = writeBatchHeader(
    buf,
    { total, count, lastOffsetDelta: count - 1, firstTimestamp, maxTimestamp, lastSequenceDelta: count - 1, baseSequence, baseOffset: 0, appendTime: -1 },
    producerId,
    pidLen,
  );
  for (let i = 0; i < count; i++) {
    const body = bodies[i];
    const tsd = zigzag(timestamps[i] - firstTimestamp);
    const d = uvarintSize(i);
    const deltas = d + d + uvarintSize(tsd);
    pos = writeUvarint(buf, pos, body.length + deltas);
    // The body (attributes first) is copied `deltas` bytes on, so that its tail lands after the deltas; the
    // attributes byte goes to the record's start and the deltas overwrite the copy's first byte.
    buf.set(body, pos + deltas);
    buf[pos] = body[0];
    pos = writeUvarint(buf, pos + 1, i);
    pos = writeUvarint(buf, pos, i);
    pos = writeUvarint(buf, pos, tsd);
    pos += body.length - 1;
  }
  if (pos !== total) throw new Error(`batch size mismatch: wrote ${pos} of ${total}`);
  writeUint32(buf, O_CRC, crc(buf, CRC_START, total));
  return buf;
}

/** A record body read back: the parts of a record a body holds. */
export interface RecordBodyParts {
  key: EncodedRecord['key'];
  value: Uint8Array | null;
  encoding: EncodingCode;
  headers: Header[];
}

const vr: VarintRead = { value: 0, pos: 0 };

/**
 * Reads a record body written by `writeRecordBody` (key, value and byte
 * headers are views into `b`); null when it does not parse.
 */
export function decodeRecordBody(b: Uint8Array, start = 0, end = b.length): RecordBodyParts | null {
  if (end <= start) return null;
  const attr = b[start];
  let p = start + 1;
  const keyKind = (attr >> 3) & 3;
  let key: EncodedRecord['key'] = null;
  if (keyKind !== 0) {
    readUvarint(b, p, end, vr);
    if (vr.pos < 0 || vr.pos + vr.value > end) return null;
    const kb = b.subarray(vr.pos, vr.pos + vr.value);
    p = vr.pos + vr.value;
    try {
      key = keyKind === 1 ? fromUtf8(kb) : kb;
    } catch {
      return null;
    }
  }
  let value: Uint8Array | null = null;
  if ((attr & 4) === 0) {
    readUvarint(b, p, end, vr);
    if (vr.pos < 0 || vr.pos + vr.value > end) return null;
    value = b.subarray(vr.pos, vr.pos + vr.value);
    p = vr.pos + vr.value;
  }
  const h = readHeadersAt(b, p, end);
  if (!h || h.end !== end) return null;
  return { key, value, encoding: (attr & 3) as EncodingCode, headers: h.headers };
}
