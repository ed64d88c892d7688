/**
 * `send()`'s input → the wire record the outbox stores, validated against
 * protocol/'s LIMITS at once so that an invalid event never enters the
 * outbox (where it would only fail later, after a reload, far from its cause).
 */
import {
  LIMITS,
  TributaryError,
  assertTopicName,
  encodeValue,
  utf8Length,
  type Header,
  type ValueEncoding,
  type WireRecord,
} from '../protocol/index.ts';
import { WIRE_ENCODING } from '../protocol/values.ts';

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

function headerList(h: SendEvent['headers']): Header[] {
  if (h === undefined || h === null) return [];
  if (Array.isArray(h)) return h;
  if (typeof h !== 'object') bad('headers must be [[name, value], ...] or an object');
  return Object.entries(h);
}

/**
 * Validates one event and returns its wire form with its byte size (what the
 * outbox's byte bound counts). Throws TributaryError: BAD_TOPIC_NAME,
 * BAD_RECORD, RECORD_TOO_LARGE, BAD_PARTITION.
 */
export function toOutboxRecord(topic: string, event: SendEvent, now: number): { rec: WireRecord; bytes: number } {
  assertTopicName(topic);
  if (typeof event !== 'object' || event === null || Array.isArray(event) || !('value' in event)) {
    bad('an event is an object with a value (null for a tombstone)');
  }
  const rec: WireRecord = { v: null };
  let bytes = RECORD_OVERHEAD_BYTES;

  const key = event.key;
  if (key !== undefined && key !== null) {
    let n: number;
    if (typeof key === 'string') n = utf8Length(key);
    else if (key instanceof Uint8Array) n = key.length;
    else bad('key must be a string, a Uint8Array or null');
    if (n > LIMITS.maxKeyBytes) bad(`key of ${n} bytes exceeds ${LIMITS.maxKeyBytes}`, 'RECORD_TOO_LARGE');
    rec.k = key;
    bytes += n;
  }

  const encoded = encodeValue(event.value, event.encoding);
  if (encoded.value !== null && encoded.value.length > LIMITS.maxValueBytes) {
    bad(`value of ${encoded.value.length} bytes exceeds ${LIMITS.maxValueBytes}`, 'RECORD_TOO_LARGE');
  }
  rec.v = encoded.value;
  const e = WIRE_ENCODING[encoded.encoding];
  if (e !== 0) rec.e = e;
  bytes += encoded.value?.length ?? 0;

  const headers = headerList(event.headers);
  if (headers.length > LIMITS.maxHeaders) bad(`${headers.length} headers exceed ${LIMITS.maxHeaders}`);
  for (const h of headers) {
    if (!Array.isArray(h) || h.length !== 2 || typeof h[0] !== 'string') bad('each header is [string name, string | Uint8Array value]');
    const nameBytes = utf8Length(h[0]);
    if (nameBytes > LIMITS.maxHeaderNameBytes) bad(`header name of ${nameBytes} bytes exceeds ${LIMITS.maxHeaderNameBytes}`);
    const v = h[1];
    let vb: number;
    if (typeof v === 'string') vb = utf8Length(v);
    else if (v instanceof Uint8Array) vb = v.length;
    else bad('a header value is a string or a Uint8Array');
    if (vb > LIMITS.maxHeaderValueBytes) bad(`header value of ${vb} bytes exceeds ${LIMITS.maxHeaderValueBytes}`);
    bytes += nameBytes + vb + 4;
  }
  if (headers.length) rec.h = headers.map((h) => [h[0], h[1]]);

  const ts = event.timestamp ?? now;
  if (!Number.isSafeInteger(ts) || ts < 0) bad('timestamp must be a non-negative integer (ms since the epoch)');
  rec.ts = ts;

  if (event.partition !== undefined && event.partition !== null) {
    const p = event.partition;
    if (!Number.isInteger(p) || p < 0 || p >= LIMITS.maxPartitions) bad(`partition must be an integer in [0, ${LIMITS.maxPartitions})`, 'BAD_PARTITION');
    rec.p = p;
  }
  // One event must fit one produce frame on its own.
  if (bytes + 256 > LIMITS.maxFrameBytes) bad(`event of ${bytes} bytes does not fit one frame`, 'RECORD_TOO_LARGE');
  return { rec, bytes };
}
