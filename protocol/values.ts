/**
 * Values between application objects and record bytes, and the record model
 * as the JSON HTTP API shows it: `json` and `cbor` values as JSON values,
 * `bytes` as {"$base64": "..."}.
 */
import { decodeCbor, encodeCbor } from './codec.ts';
import { TributaryError } from './errors.ts';
import { jsonNestsDeeperThan } from './json-depth.ts';
import { LIMITS } from './limits.ts';
import { ENCODING_CODE, fromBase64, fromUtf8, toBase64, utf8, utf8Length, type EncodedRecord, type Header, type StoredRecord, type ValueEncoding } from './record.ts';
import type { WireRecord } from './frames.ts';
import { SlabPool } from './slab-pool.ts';

/** Application value → bytes: Uint8Array as `bytes`, null as a tombstone, anything else as `json` unless `cbor` is asked for. */
export function encodeValue(value: unknown, encoding?: ValueEncoding): { value: Uint8Array | null; encoding: ValueEncoding } {
  if (value === null || value === undefined) return { value: null, encoding: encoding ?? 'json' };
  if (value instanceof Uint8Array && (encoding === undefined || encoding === 'bytes')) return { value, encoding: 'bytes' };
  if (encoding === 'cbor') return { value: encodeCbor(value), encoding };
  if (encoding === 'bytes') throw new TributaryError('BAD_RECORD', 'a bytes value must be a Uint8Array');
  const text = jsonText(value);
  return { value: text.length > POOL_MAX_TEXT ? utf8(text) : utf8Pooled(text), encoding: 'json' };
}

/** A value's JSON text; BAD_RECORD where it has none (a function, a cycle, a BigInt). */
export function jsonText(value: unknown): string {
  let text: string | undefined;
  try {
    text = JSON.stringify(value);
  } catch {
    text = undefined;
  }
  if (text === undefined) throw new TributaryError('BAD_RECORD', 'value cannot be encoded as JSON');
  return text;
}

/**
 * Small JSON texts are encoded into shared slabs (slab-pool.ts), each value a
 * view of its own bytes; slabs fill in send order.
 */
const POOL_SLAB_BYTES = 64 * 1024;
/** Texts longer than this (in UTF-16 units, up to 3 bytes each) get a buffer of their own. */
const POOL_MAX_TEXT = 2048;
const pool = new SlabPool(POOL_SLAB_BYTES);
const encoder = new TextEncoder();

/**
 * Texts shorter than this are measured, then copied by a JS loop: for them that beats encodeInto's
 * native call and the extra view of the slab it needs (measured: ~0.7x the time at 16 chars).
 */
const LOOP_MAX_TEXT = 32;

/**
 * The text's UTF-8 from the pool. From LOOP_MAX_TEXT chars on, in one pass:
 * written by encodeInto where the pool's next bytes start (room for 3 bytes
 * a char reserved), then what was written is taken; no pass to measure it first.
 */
function utf8Pooled(text: string): Uint8Array {
  const len = text.length;
  if (len >= LOOP_MAX_TEXT) {
    const room = pool.reserve(3 * len) as Uint8Array; // 3 * POOL_MAX_TEXT is within the pool's shared size
    return pool.take(encoder.encodeInto(text, room).written);
  }
  const n = utf8Length(text);
  const b = pool.take(n);
  if (n === len) {
    // ASCII: every char is its byte.
    for (let i = 0; i < n; i++) b[i] = text.charCodeAt(i);
  } else encoder.encodeInto(text, b);
  return b;
}

/** Record bytes → application value. Throws BAD_RECORD for bytes that do not decode. */
export function decodeValue(value: Uint8Array | null, encoding: ValueEncoding): unknown {
  if (value === null) return null;
  try {
    if (encoding === 'json') {
      const text = fromUtf8(value);
      // A value nested too deep to re-serialize is shown as bytes, not a stack overflow.
      if (jsonNestsDeeperThan(text, LIMITS.maxNestingDepth)) throw new RangeError('too deep');
      return JSON.parse(text);
    }
    if (encoding === 'cbor') return decodeCbor(value);
  } catch {
    throw new TributaryError('BAD_RECORD', `value is not valid ${encoding}`);
  }
  return value;
}

/** Record model → wire record (for produce frames). */
export function toWireRecord(r: EncodedRecord & { partition?: number }): WireRecord {
  const w: WireRecord = { v: r.value };
  if (r.key !== null) w.k = r.key;
  const e = ENCODING_CODE[r.encoding];
  if (e !== 0) w.e = e;
  if (r.headers.length) w.h = r.headers;
  w.ts = r.timestamp;
  if (r.partition !== undefined) w.p = r.partition;
  return w;
}

type JsonBytes = { $base64: string };
const isB64 = (x: unknown): x is JsonBytes => typeof x === 'object' && x !== null && typeof (x as JsonBytes).$base64 === 'string' && Object.keys(x).length === 1;

function bytesFromJson(x: JsonBytes, what: string): Uint8Array {
  try {
    return fromBase64(x.$base64);
  } catch {
    throw new TributaryError('BAD_RECORD', `${what}: $base64 is not valid base64`);
  }
}

const jsonBytes = (b: Uint8Array): JsonBytes => ({ $base64: toBase64(b) });

export interface JsonRecordIn {
  key?: unknown;
  value?: unknown;
  headers?: unknown;
  timestamp?: unknown;
  partition?: unknown;
}

/**
 * The JSON body of `POST /v1/topics/:topic/records`, as the hub reads it
 * (server/transport/http-records.ts) and the edge worker writes it.
 */
export interface JsonProduceBody {
  records: JsonRecordIn[];
  /** With `sequence`: an idempotent producer; record i has sequence `sequence + i`. */
  producerId?: string;
  sequence?: number;
}

/**
 * A record of the JSON HTTP API → the record model. The value is JSON
 * (stored as `json`) unless it is {"$base64"} (stored as `bytes`); null is a
 * tombstone. Shapes and sizes are checked again by the wire-record parser.
 */
export function recordFromJson(r: JsonRecordIn, index: number, now: number): WireRecord {
  if (typeof r !== 'object' || r === null || Array.isArray(r)) throw new TributaryError('BAD_RECORD', `record ${index} must be an object`);
  if (!('value' in r)) throw new TributaryError('BAD_RECORD', `record ${index} needs a value (null for a tombstone)`);
  const w: WireRecord = { v: null };
  if (r.key !== undefined && r.key !== null) {
    if (typeof r.key === 'string') w.k = r.key;
    else if (isB64(r.key)) w.k = bytesFromJson(r.key, `record ${index} key`);
    else throw new TributaryError('BAD_RECORD', `record ${index}: key must be a string, {"$base64"} or null`);
  }
  if (r.value !== null) {
    if (isB64(r.value)) {
      w.v = bytesFromJson(r.value, `record ${index} value`);
      w.e = 0;
    } else {
      w.v = utf8(JSON.stringify(r.value));
      w.e = 1;
    }
  } else w.e = 1;
  if (r.headers !== undefined && r.headers !== null) {
    if (!Array.isArray(r.headers)) throw new TributaryError('BAD_RECORD', `record ${index}: headers must be [[name, value], ...]`);
    w.h = r.headers.map((h: unknown): Header => {
      if (!Array.isArray(h) || h.length !== 2 || typeof h[0] !== 'string') throw new TributaryError('BAD_RECORD', `record ${index}: each header is [name, value]`);
      const v = h[1];
      if (typeof v === 'string') return [h[0], v];
      if (isB64(v)) return [h[0], bytesFromJson(v, `record ${index} header`)];
      throw new TributaryError('BAD_RECORD', `record ${index}: header value must be a string or {"$base64"}`);
    });
  }
  w.ts = r.timestamp === undefined || r.timestamp === null ? now : (r.timestamp as number);
  if (r.partition !== undefined && r.partition !== null) w.p = r.partition as number;
  return w;
}

export interface JsonRecordOut {
  offset: number;
  timestamp: number;
  key: string | JsonBytes | null;
  value: unknown;
  headers: Array<[string, string | JsonBytes]>;
}

/** A stored record as the JSON HTTP API shows it. A value that does not decode is shown as {"$base64"}. */
export function recordToJson(r: StoredRecord): JsonRecordOut {
  let value: unknown;
  if (r.value === null) value = null;
  else if (r.encoding === 'bytes') value = jsonBytes(r.value);
  else {
    try {
      value = decodeValue(r.value, r.encoding);
    } catch {
      value = jsonBytes(r.value);
    }
  }
  return {
    offset: r.offset,
    timestamp: r.timestamp,
    key: r.key === null ? null : typeof r.key === 'string' ? r.key : jsonBytes(r.key),
    value,
    headers: r.headers.map(([n, v]) => [n, typeof v === 'string' ? v : jsonBytes(v)]),
  };
}
