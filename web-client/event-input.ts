/**
 * `send()`'s input → the wire record the outbox stores, validated against
 * protocol/'s LIMITS at once so that an invalid event never enters the
 * outbox (where it would only fail later, after a reload, far from its cause).
 */
import {
  ENCODING_CODE,
  LIMITS,
  SlabPool,
  TributaryError,
  VALUE_ENCODINGS,
  assertTopicName,
  encodeBatch,
  encodeBodyBatch,
  encodeValue,
  jsonText,
  keyBytes,
  recordBodySize,
  uvarintSize,
  writeRecordBody,
  writeTextRecordBody,
  writeTextRecordBodyInto,
  recordLimitFault,
  utf8Length,
  type Crc32c,
  type EncodedRecord,
  type Header,
  type ValueEncoding,
  type WireRecord,
} from '../protocol/index.ts';

/** An event as the application hands it to `send()`. */
export interface SendEvent {
  /** Events with the same key land in the same partition, in send order. */
  key?: string | Uint8Array | null;
  /** Uint8Array (bytes), null (tombstone), or any JSON value (`cbor` on request). */
  value: unknown;
  /** Ordered [name, value] pairs or a plain object of them. */
  headers?: Header[] | Record<string, string | Uint8Array>;
  /** Event time in ms since the epoch; default: the time of `send()`. */
  timestamp?: number;
  /** Explicit partition; default: the key's partition (spread for null keys). */
  partition?: number;
  /** Value encoding; default `bytes` for Uint8Array, `json` otherwise. */
  encoding?: ValueEncoding;
}

/** Per-record framing overhead budgeted on top of key, value and headers (varints, attributes, CBOR map keys). */
const RECORD_OVERHEAD_BYTES = 32;

function bad(message: string, code: 'BAD_RECORD' | 'RECORD_TOO_LARGE' | 'BAD_PARTITION' = 'BAD_RECORD'): never {
  throw new TributaryError(code, message);
}

/** `headers` as send() takes them (pairs or an object), checked for shape. */
export function headerPairs(h: SendEvent['headers']): Header[] {
  if (h === undefined || h === null) return NO_HEADERS;
  const list = Array.isArray(h) ? h : typeof h === 'object' ? Object.entries(h) : bad('headers must be [[name, value], ...] or an object');
  for (let i = 0; i < list.length; i++) {
    const p = list[i] as unknown;
    if (!Array.isArray(p) || p.length !== 2 || typeof p[0] !== 'string') bad('each header is [string name, string | Uint8Array value]');
    if (typeof p[1] !== 'string' && !(p[1] instanceof Uint8Array)) bad('a header value is a string or a Uint8Array');
  }
  return list;
}

/** Shared by every event without headers: never written to. */
const NO_HEADERS: Header[] = [];

/** The topic name last checked (assertTopicName), so that a burst to one topic checks it once. */
let lastTopic = '';

/**
 * Record bodies are carved out of shared slabs (protocol/slab-pool.ts): one
 * allocation per ~100 events instead of one each. An outbox drains in about
 * the order it fills, and the slab is small so that a few events left behind
 * (a refused topic, another subject's) pin little: at most one slab each.
 */
const bodies = new SlabPool(16 * 1024);

/**
 * The checks of one event, in the order every path runs them (toOutboxRecord, and the memory outbox's
 * `Chunk.write`, which encodes straight into its chunk): shape and key (`eventKey`), headers
 * (`headerPairs`), value (`jsonValueText` or `checkedValue`), then `eventTimestamp`, `eventPartition` and
 * `checkFitsFrame` on the size `boundBytes` counts.
 */
export function eventKey(event: SendEvent): string | Uint8Array | null {
  // `value` read first: a defined value settles the shape check without `in` (a keyed lookup each call).
  if (typeof event !== 'object' || event === null || (event.value === undefined && !('value' in event)) || Array.isArray(event)) {
    bad('an event is an object with a value (null for a tombstone)');
  }
  const key = event.key ?? null;
  if (key !== null && typeof key !== 'string' && !(key instanceof Uint8Array)) bad('key must be a string, a Uint8Array or null');
  return key;
}

/** Whether `send()` writes this value as JSON text straight into a record body (`jsonValueText`). */
export function isJsonText(event: SendEvent): boolean {
  const v = event.value;
  return v !== null && v !== undefined && !(v instanceof Uint8Array) && (event.encoding === undefined || event.encoding === 'json');
}

/** A JSON value's text, checked against the value limit and the record's other limits before it is written. */
export function jsonValueText(v: unknown, key: string | Uint8Array | null, headers: Header[]): string {
  const text = jsonText(v);
  // UTF-8 never has fewer bytes than UTF-16 units: a text this long is too large whatever it holds.
  if (text.length > LIMITS.maxValueBytes) valueTooLarge(utf8Length(text));
  const fault = recordLimitFault(key, null, headers);
  if (fault) bad(fault.message, fault.code as 'BAD_RECORD' | 'RECORD_TOO_LARGE');
  return text;
}

export function valueTooLarge(bytes: number): never {
  bad(`value of ${bytes} bytes exceeds ${LIMITS.maxValueBytes}`, 'RECORD_TOO_LARGE');
}

/** A value that is not written as JSON text: encoded, and checked with the record's limits. */
export function checkedValue(event: SendEvent, key: string | Uint8Array | null, headers: Header[]): { value: Uint8Array | null; encoding: ValueEncoding } {
  const encoded = encodeValue(event.value, event.encoding);
  const fault = recordLimitFault(key, encoded.value, headers);
  if (fault) bad(fault.message, fault.code as 'BAD_RECORD' | 'RECORD_TOO_LARGE');
  return encoded;
}

/** What an event counts against the outbox's byte bound. */
export function boundBytes(key: string | Uint8Array | null, valueBytes: number, headers: Header[]): number {
  let bytes = RECORD_OVERHEAD_BYTES + valueBytes;
  if (key !== null) bytes += typeof key === 'string' ? utf8Length(key) : key.length;
  for (const [name, v] of headers) bytes += utf8Length(name) + (typeof v === 'string' ? utf8Length(v) : v.length) + 4;
  return bytes;
}

export function eventTimestamp(event: SendEvent, now: number): number {
  const ts = event.timestamp ?? now;
  if (!Number.isSafeInteger(ts) || ts < 0) bad('timestamp must be a non-negative integer (ms since the epoch)');
  return ts;
}

/** The event's explicit partition, checked, or undefined. */
export function eventPartition(event: SendEvent): number | undefined {
  const p = event.partition;
  if (p === undefined || p === null) return undefined;
  if (!Number.isInteger(p) || p < 0 || p >= LIMITS.maxPartitions) bad(`partition must be an integer in [0, ${LIMITS.maxPartitions})`, 'BAD_PARTITION');
  return p;
}

/** One event must fit one produce frame on its own. */
export function checkFitsFrame(bytes: number): void {
  if (bytes + 256 > LIMITS.maxFrameBytes) bad(`event of ${bytes} bytes does not fit one frame`, 'RECORD_TOO_LARGE');
}

/** The record body (protocol/batch.ts `recordBodySize`) of a validated wire record. */
export function recordBody(rec: WireRecord): Uint8Array {
  const key = rec.k ?? null;
  const headers = rec.h ?? NO_HEADERS;
  const body = bodies.take(recordBodySize(key, rec.v, headers));
  writeRecordBody(body, 0, key, rec.v, rec.e ?? 0, headers);
  return body;
}

/**
 * Validates one event and returns its wire form with its byte size (what the
 * outbox's byte bound counts), and with `withBody` its record body, encoded
 * once here so that every batch it goes out in only copies it. Throws
 * TributaryError: BAD_TOPIC_NAME, BAD_RECORD, RECORD_TOO_LARGE, BAD_PARTITION.
 */
export function toOutboxRecord(topic: string, event: SendEvent, now: number, withBody = false): { rec: WireRecord; bytes: number; body?: Uint8Array } {
  // A burst names one topic: check the name once, not per event.
  if (topic !== lastTopic) {
    assertTopicName(topic);
    lastTopic = topic;
  }
  const key = eventKey(event);
  const headers = headerPairs(event.headers);
  let encoded: { value: Uint8Array | null; encoding: ValueEncoding };
  let body: Uint8Array | undefined;
  if (withBody && isJsonText(event)) {
    // JSON straight into the record body; the record's value is a view of it (no buffer per value).
    const text = jsonValueText(event.value, key, headers);
    const fixed = recordBodySize(key, null, headers);
    const room = bodies.reserve(fixed + 3 * text.length + 5);
    const w = room && writeTextRecordBodyInto(room, key, text, ENCODING_CODE.json, headers, LIMITS.maxValueBytes);
    if (room && !w) valueTooLarge(utf8Length(text));
    if (w) {
      // Small texts (nearly all): encoded once, straight into the slab.
      body = bodies.take(w.size);
      encoded = { value: body.subarray(w.valueAt, w.valueAt + w.valueBytes), encoding: 'json' };
    } else {
      const vlen = utf8Length(text);
      if (vlen > LIMITS.maxValueBytes) valueTooLarge(vlen);
      body = bodies.take(fixed + uvarintSize(vlen) + vlen);
      writeTextRecordBody(body, 0, key, text, vlen, ENCODING_CODE.json, headers);
      const at = 1 + keyBytes(key) + uvarintSize(vlen);
      encoded = { value: body.subarray(at, at + vlen), encoding: 'json' };
    }
  } else encoded = checkedValue(event, key, headers);

  const rec: WireRecord = { v: encoded.value };
  if (key !== null) rec.k = key;
  const e = ENCODING_CODE[encoded.encoding];
  if (e !== 0) rec.e = e;
  if (headers.length) rec.h = headers.map((h) => [h[0], h[1]]);
  const bytes = boundBytes(key, encoded.value?.length ?? 0, headers);
  rec.ts = eventTimestamp(event, now);
  const p = eventPartition(event);
  if (p !== undefined) rec.p = p;
  checkFitsFrame(bytes);
  return withBody ? { rec, bytes, body: body ?? recordBody(rec) } : { rec, bytes };
}

/** A validated wire record as the batch encoder takes it. */
function toEncodedRecord(rec: WireRecord): EncodedRecord {
  return { key: rec.k ?? null, value: rec.v, encoding: VALUE_ENCODINGS[rec.e ?? 0], headers: rec.h ?? NO_HEADERS, timestamp: rec.ts! };
}

/**
 * One record batch in the batch form (docs/protocol.md), as the outbox's
 * lanes and `produce()` send it: the producer id, the first record's
 * sequence (record i has baseSequence + i, dense), the records' timestamps;
 * base offset and append time are the hub's to stamp.
 */
export function encodeWireBatch(producerId: string, baseSequence: number, records: ReadonlyArray<WireRecord>, crc: Crc32c): Uint8Array {
  const recs = new Array<EncodedRecord>(records.length);
  for (let i = 0; i < records.length; i++) recs[i] = toEncodedRecord(records[i]);
  return encodeBatch({ producerId, baseSequence, appendTime: 0, records: recs }, crc);
}

/**
 * One batch of outbox events (`encodeWireBatch`'s batch), from their record
 * bodies: encoded at `send()` where the store kept them, here otherwise (an
 * outbox that keeps no bodies, events of an older client). With `room`, the
 * batch is a view that many bytes into its buffer (outbox-segment.ts `batchFrame`).
 */
export function encodeOutboxBatch(producerId: string, baseSequence: number, events: ReadonlyArray<{ rec: WireRecord; body?: Uint8Array }>, crc: Crc32c, room = 0): Uint8Array {
  const bodies = new Array<Uint8Array>(events.length);
  const timestamps = new Array<number>(events.length);
  for (let i = 0; i < events.length; i++) {
    const e = events[i];
    bodies[i] = e.body ?? recordBody(e.rec);
    timestamps[i] = e.rec.ts!;
  }
  return encodeBodyBatch(producerId, baseSequence, bodies, timestamps, crc, room);
}
