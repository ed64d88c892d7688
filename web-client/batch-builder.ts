/**
 * A record batch written event by event, straight into its final bytes.
 *
 * `produce()` used to turn each event into a validated wire record, then an
 * encoder record, then size every record in a first pass and write it in a
 * second: three objects and two walks per event. Stream processing's output
 * lanes and changelog push tens of thousands of events a second, so here an
 * event is validated and written once, into one growing buffer, with its
 * offset and sequence delta (its index) and its timestamp delta (against
 * the batch's first record) already final. seal() then writes the header
 * (producer id, base sequence, counts, timestamps) and the CRC.
 *
 * The bytes are exactly what protocol/batch.ts's encodeBatch writes for the
 * same records (test/web-client/batch-builder.test.ts compares them), and
 * an event is refused with the same codes as `send()` refuses it.
 */
import {
  BATCH_HEADER_BYTES,
  BATCH_MAGIC,
  CRC_START,
  ENCODING_CODE,
  LENGTH_FIELD_END,
  LIMITS,
  TributaryError,
  encodeValue,
  jsonText,
  recordLimitFault,
  utf8Length,
  uvarintSize,
  writeInt64,
  writeBytes,
  writeUint32,
  writeUtf8Once,
  writeUvarint,
  zigzag,
  type Crc32c,
  type Header,
  type ValueEncoding,
} from '../protocol/index.ts';
import { headerPairs, type SendEvent } from './event-input.ts';

/** First buffer of a batch: grows by doubling, so a batch of many small records is copied a few times at most. */
const INITIAL_BUFFER_BYTES = 64 * 1024;
/** Varint bytes reserved for a record's length before its body is sized: records stay under 2^28 bytes (LIMITS). */
const MAX_LENGTH_VARINT_BYTES = 4;
/**
 * JSON texts shorter than this (in UTF-16 units) are written by a JS loop taken as ASCII (checked as it
 * goes): under ~40 chars it beats encodeInto's native call; longer ones are encoded once by encodeInto.
 */
const LOOP_MAX_TEXT = 32;
/** Texts longer than this are counted in UTF-8 first: encodeInto's room (3 bytes a char) would grow the buffer needlessly. */
const ONE_PASS_MAX_TEXT = 16 * 1024;
/** Fixed bytes longer than this are copied by set(), shorter ones by a loop. */
const SET_MIN_BYTES = 24;
/** A sealed batch keeps its buffer unless more than this share of it is unused (then it is copied to size). */
const MAX_SLACK_SHARE = 0.25;

const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder();

function bad(message: string, code: 'BAD_RECORD' | 'RECORD_TOO_LARGE' = 'BAD_RECORD'): never {
  throw new TributaryError(code, message);
}

/**
 * Writes `s` as `len` bytes of UTF-8 after their length. `len` equal to the
 * string's length means ASCII (any other char takes 2+ bytes); the caller
 * may pass that unchecked: -1 then says a char was not ASCII (the caller
 * writes the record again with the real length).
 */
function writeText(buf: Uint8Array, pos: number, s: string, len: number): number {
  pos = writeUvarint(buf, pos, len);
  if (len === s.length) {
    // A loop beats encodeInto's call for short strings, and checks ASCII on the way (one pass, not two).
    for (let i = 0; i < len; i++) {
      const c = s.charCodeAt(i);
      if (c > 0x7f) return -1;
      buf[pos + i] = c;
    }
  } else textEncoder.encodeInto(s, buf.subarray(pos, pos + len));
  return pos + len;
}

/** Characters of a safe integer's decimal text (its sign included; -0 is "0", as JSON writes it). */
function integerTextLength(n: number): number {
  let len = n < 0 ? 2 : 1;
  for (let x = n < 0 ? -n : n; x >= 10; x = Math.floor(x / 10)) len++;
  return len;
}

/** Writes a safe integer's decimal text, `len` chars (integerTextLength). */
function writeInteger(buf: Uint8Array, pos: number, n: number, len: number): number {
  let x = n;
  if (n < 0) {
    buf[pos] = 0x2d; // '-'
    x = -n;
  }
  for (let i = pos + len - 1; ; i--) {
    buf[i] = 0x30 + (x % 10);
    x = Math.floor(x / 10);
    if (x === 0) break;
  }
  return pos + len;
}

export class BatchBuilder {
  private buf: Uint8Array;
  private pos: number;
  private n = 0;
  private firstTs = 0;
  private maxTs = 0;
  private readonly pid: Uint8Array;

  /** `producerId`: written into the header now, so it is encoded once per batch. */
  constructor(producerId: string) {
    this.pid = textEncoder.encode(producerId);
    if (this.pid.length > LIMITS.maxProducerIdBytes) throw new TributaryError('BAD_RECORD', `producer id longer than ${LIMITS.maxProducerIdBytes} bytes`);
    this.buf = new Uint8Array(INITIAL_BUFFER_BYTES);
    this.pos = BATCH_HEADER_BYTES + this.pid.length;
  }

  /** Records written so far. */
  get count(): number {
    return this.n;
  }

  /** Bytes of the batch so far (header included). */
  get byteLength(): number {
    return this.pos;
  }

  /** Validates and writes one event as send() takes it (headers as pairs or an object; `encoding` honoured). */
  addEvent(e: SendEvent, now: number): void {
    if (typeof e !== 'object' || e === null || Array.isArray(e) || !('value' in e)) bad('an event is an object with a value (null for a tombstone)');
    this.add(e.key ?? null, e.value, e.timestamp ?? now, headerPairs(e.headers), e.encoding);
  }

  /**
   * Validates and writes one record. `value`: null (a tombstone), a
   * Uint8Array (bytes), or any JSON value; `encoding` as in send().
   * Throws BAD_RECORD / RECORD_TOO_LARGE and leaves the batch as it was.
   */
  add(key: string | Uint8Array | null, value: unknown, timestamp: number, headers: readonly Header[], encoding?: ValueEncoding): void {
    if (value !== null && value !== undefined && encoding === undefined && !(value instanceof Uint8Array)) {
      this.addJson(key, jsonText(value), timestamp, headers);
      return;
    }
    const enc = encodeValue(value, encoding);
    this.write(key, enc.value, null, 0, ENCODING_CODE[enc.encoding], timestamp, headers);
  }

  /**
   * Writes a record whose value is already encoded (`encoding` says how), as
   * a consumed record carries it: its bytes are copied as they are, so a
   * value passed through is neither decoded nor encoded again. null: a
   * tombstone.
   */
  addEncoded(key: string | Uint8Array | null, bytes: Uint8Array | null, encoding: ValueEncoding, timestamp: number, headers: readonly Header[]): void {
    if (bytes === null) {
      this.write(key, null, null, 0, ENCODING_CODE[encoding], timestamp, headers);
      return;
    }
    this.write(key, bytes, null, 0, ENCODING_CODE[encoding], timestamp, headers);
  }

  /** Writes a record whose value is JSON text already (the caller vouches that it is JSON). */
  addJson(key: string | Uint8Array | null, json: string, timestamp: number, headers: readonly Header[]): void {
    // Encoded once by encodeInto, its length found as it is written (the usual case: no pass to measure it first).
    if (json.length >= LOOP_MAX_TEXT && json.length <= ONE_PASS_MAX_TEXT) {
      this.write(key, null, json, -1, ENCODING_CODE.json, timestamp, headers);
      return;
    }
    // Short: written as ASCII (bytes = chars) first; only a text with a char above 0x7f is counted in UTF-8 and written again.
    if (json.length <= LIMITS.maxValueBytes && this.write(key, null, json, json.length, ENCODING_CODE.json, timestamp, headers)) return;
    const bytes = utf8Length(json);
    if (bytes > LIMITS.maxValueBytes) bad(`value of ${bytes} bytes exceeds ${LIMITS.maxValueBytes}`, 'RECORD_TOO_LARGE');
    this.write(key, null, json, bytes, ENCODING_CODE.json, timestamp, headers);
  }

  /**
   * Writes a record whose value is the JSON text `head` + `n` + `tail`
   * (`head` and `tail` as UTF-8 bytes; the caller vouches that the whole is
   * JSON): a value that differs from record to record only in a number (a
   * windowed count's result) is written without building its text, its
   * fixed parts copied as bytes. The same bytes as addJson of that text.
   */
  addJsonNumber(key: string | Uint8Array | null, head: Uint8Array, n: number, tail: Uint8Array, timestamp: number, headers: readonly Header[]): void {
    if (Number.isSafeInteger(n)) {
      const bytes = head.length + integerTextLength(n) + tail.length;
      if (bytes > LIMITS.maxValueBytes) bad(`value of ${bytes} bytes exceeds ${LIMITS.maxValueBytes}`, 'RECORD_TOO_LARGE');
      this.write(key, head, null, bytes, ENCODING_CODE.json, timestamp, headers, n, tail);
      return;
    }
    // Not an integer: the text as JSON writes the number.
    this.addJson(key, `${textDecoder.decode(head)}${JSON.stringify(n)}${textDecoder.decode(tail)}`, timestamp, headers);
  }

  /**
   * One record: the value as bytes (`bin`) or as text (`text`, `textBytes`
   * long in UTF-8, -1 when not known: then encoded by encodeInto and
   * measured as it is written), or neither (null). False, and nothing
   * written, when `textBytes` was the text's length unchecked and a char is
   * not ASCII.
   * With `tail`: the value is the bytes `bin` + the safe integer `num`'s
   * digits + the bytes `tail` (`textBytes` long in all).
   */
  private write(
    key: string | Uint8Array | null,
    bin: Uint8Array | null,
    text: string | null,
    textBytes: number,
    enc: number,
    timestamp: number,
    headers: readonly Header[],
    num = 0,
    tail: Uint8Array | null = null,
  ): boolean {
    if (key !== null && typeof key !== 'string' && !(key instanceof Uint8Array)) bad('key must be a string, a Uint8Array or null');
    if (!Number.isSafeInteger(timestamp) || timestamp < 0) bad('timestamp must be a non-negative integer (ms since the epoch)');
    if (headers.length || (bin !== null && tail === null) || (key !== null && key.length * 3 > LIMITS.maxKeyBytes)) {
      const fault = recordLimitFault(key, bin, headers as Header[]);
      if (fault) bad(fault.message, fault.code as 'BAD_RECORD' | 'RECORD_TOO_LARGE');
    }
    const i = this.n;
    // A short string key is taken as ASCII and checked as it is written (writeText), a long one counted first.
    let keyLen = key === null ? 0 : typeof key === 'string' ? (key.length < 64 ? key.length : utf8Length(key)) : key.length;
    const tsDelta = zigzag(timestamp - (i === 0 ? timestamp : this.firstTs));
    let pos = this.writeAt(i, key, keyLen, bin, text, textBytes, enc, tsDelta, headers, num, tail);
    if (pos === -2) {
      // The key was not ASCII: written again with its UTF-8 length.
      keyLen = utf8Length(key as string);
      pos = this.writeAt(i, key, keyLen, bin, text, textBytes, enc, tsDelta, headers, num, tail);
    }
    if (pos === -1) return false;
    if (pos === -3) {
      const bytes = utf8Length(text as string);
      bad(`value of ${bytes} bytes exceeds ${LIMITS.maxValueBytes}`, 'RECORD_TOO_LARGE');
    }
    if (i === 0) this.firstTs = this.maxTs = timestamp;
    else if (timestamp > this.maxTs) this.maxTs = timestamp;
    this.pos = pos;
    this.n = i + 1;
    return true;
  }

  /**
   * Writes record `i` at the end of the batch: the position after it, -2 if
   * the key or -1 if the text was not ASCII as assumed, -3 if the text
   * (textBytes -1) exceeds the value limit.
   */
  private writeAt(
    i: number,
    key: string | Uint8Array | null,
    keyLen: number,
    bin: Uint8Array | null,
    text: string | null,
    textBytes: number,
    enc: number,
    tsDelta: number,
    headers: readonly Header[],
    num: number,
    tail: Uint8Array | null,
  ): number {
    const hasValue = bin !== null || text !== null;
    // A text of unknown UTF-8 length is sized as ASCII (one byte a char, the usual case); the record moves if not.
    const oneEncode = text !== null && textBytes < 0;
    const valueLen = bin !== null && tail === null ? bin.length : oneEncode ? (text as string).length : textBytes;
    let size = 1 + uvarintSize(i) * 2 + uvarintSize(tsDelta) + uvarintSize(headers.length);
    if (key !== null) size += uvarintSize(keyLen) + keyLen;
    if (hasValue) size += uvarintSize(valueLen) + valueLen;
    for (let h = 0; h < headers.length; h++) {
      const [name, v] = headers[h];
      const nb = utf8Length(name);
      const vb = typeof v === 'string' ? utf8Length(v) : v.length;
      size += uvarintSize(nb) + nb + 1 + uvarintSize(vb) + vb;
    }
    // encodeInto's room: up to 3 bytes a char (a surrogate pair's 4 bytes are 2 chars).
    this.reserve(MAX_LENGTH_VARINT_BYTES + size + (oneEncode ? 2 * valueLen + MAX_LENGTH_VARINT_BYTES : 0));
    const buf = this.buf;
    const start = this.pos;
    let pos = writeUvarint(buf, start, size);
    const bodyAt = pos;
    buf[pos++] = enc | (hasValue ? 0 : 4) | ((key === null ? 0 : typeof key === 'string' ? 1 : 2) << 3);
    pos = writeUvarint(buf, pos, i);
    pos = writeUvarint(buf, pos, i);
    pos = writeUvarint(buf, pos, tsDelta);
    if (typeof key === 'string') {
      pos = writeText(buf, pos, key, keyLen);
      if (pos < 0) return -2;
    } else if (key !== null) pos = writeBytes(buf, pos, key);
    if (tail !== null) {
      // head bytes, the integer's digits, tail bytes: a byte loop beats set()'s call for a few bytes, not for a
      // windowed result's ~70-byte head (set() 12 ns, the loop 65 ns, V8 in Node 20)
      pos = writeUvarint(buf, pos, valueLen);
      const head = bin as Uint8Array;
      if (head.length > SET_MIN_BYTES) buf.set(head, pos);
      else for (let j = 0; j < head.length; j++) buf[pos + j] = head[j];
      pos = writeInteger(buf, pos + head.length, num, valueLen - head.length - tail.length);
      for (let j = 0; j < tail.length; j++) buf[pos + j] = tail[j];
      pos += tail.length;
    } else if (bin !== null) pos = writeBytes(buf, pos, bin);
    else if (oneEncode) {
      const written = writeUtf8Once(buf, pos, text as string, LIMITS.maxValueBytes);
      if (written < 0) return -3;
      pos += uvarintSize(written) + written;
    } else if (text !== null) {
      pos = writeText(buf, pos, text, valueLen);
      if (pos < 0) return -1;
    }
    pos = writeUvarint(buf, pos, headers.length);
    for (let h = 0; h < headers.length; h++) {
      const [name, v] = headers[h];
      pos = writeText(buf, pos, name, utf8Length(name));
      if (typeof v === 'string') {
        buf[pos++] = 0;
        pos = writeText(buf, pos, v, utf8Length(v));
      } else {
        buf[pos++] = 1;
        pos = writeBytes(buf, pos, v);
      }
    }
    if (oneEncode && pos - bodyAt !== size) {
      // Not ASCII: the record is longer than sized; its length prefix is rewritten, and the body moved if that grew.
      const real = pos - bodyAt;
      const lenSize = uvarintSize(real);
      if (start + lenSize !== bodyAt) {
        buf.copyWithin(start + lenSize, bodyAt, pos);
        pos += start + lenSize - bodyAt;
      }
      writeUvarint(buf, start, real);
    }
    return pos;
  }

  private reserve(bytes: number): void {
    if (this.pos + bytes <= this.buf.length) return;
    let cap = this.buf.length * 2;
    while (cap < this.pos + bytes) cap *= 2;
    const next = new Uint8Array(cap);
    next.set(this.buf.subarray(0, this.pos));
    this.buf = next;
  }

  /**
   * The batch with its first record at `baseSequence`: header, producer id
   * and CRC written; the builder is empty again (with a new buffer, since
   * the sealed bytes may still be in flight).
   */
  seal(baseSequence: number, crc: Crc32c): Uint8Array {
    if (this.n === 0) throw new TributaryError('BAD_BATCH', 'a batch needs at least one record');
    const total = this.pos;
    if (total > LIMITS.maxBatchBytes) throw new TributaryError('FRAME_TOO_LARGE', `batch of ${total} bytes exceeds ${LIMITS.maxBatchBytes}`);
    const buf = this.buf;
    writeInt64(buf, 0, 0); // base offset: the hub's to stamp
    writeUint32(buf, 8, total - LENGTH_FIELD_END);
    buf[12] = BATCH_MAGIC;
    buf[17] = 0; // attributes
    buf[18] = 0;
    writeUint32(buf, 19, this.n);
    writeUint32(buf, 23, this.n - 1); // last offset delta
    writeInt64(buf, 27, this.firstTs);
    writeInt64(buf, 35, this.maxTs);
    writeInt64(buf, 43, 0); // append time: the hub's to stamp
    writeInt64(buf, 51, baseSequence);
    writeUint32(buf, 59, this.n - 1); // last sequence delta
    buf[63] = this.pid.length;
    buf.set(this.pid, BATCH_HEADER_BYTES);
    writeUint32(buf, 13, crc(buf, CRC_START, total));
    const out = total < buf.length * (1 - MAX_SLACK_SHARE) ? buf.slice(0, total) : buf.subarray(0, total);
    // The next batch starts with room for one like this one: a lane's batches are alike, and a buffer
    // sized by the largest batch ever would be zeroed (and sliced) again for every small one.
    let cap = INITIAL_BUFFER_BYTES;
    while (cap < total && cap < LIMITS.maxBatchBytes) cap *= 2;
    this.buf = new Uint8Array(cap);
    this.pos = BATCH_HEADER_BYTES + this.pid.length;
    this.n = 0;
    return out;
  }
}
