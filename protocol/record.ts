/**
 * The record model, the same in every API.
 *
 * - key: a UTF-8 string, bytes, or null;
 * - value: bytes tagged with an encoding (`json`: UTF-8 JSON text, `cbor`,
 *   `bytes`), or null (a tombstone);
 * - headers: ordered [name, value] pairs, string name, string or bytes value;
 * - timestamp: ms since the epoch, set by the producer when the event happened.
 */
import type { ErrorCode } from './errors.ts';
import { LIMITS } from './limits.ts';

/**
 * The value encodings by their wire code: the code is the index, in batches
 * (attribute bits 0-1), in produce frames (`e`) and in the client's outbox.
 */
export const VALUE_ENCODINGS = ['bytes', 'json', 'cbor'] as const;
export type ValueEncoding = (typeof VALUE_ENCODINGS)[number];
export type EncodingCode = 0 | 1 | 2;
export const ENCODING_CODE: Readonly<Record<ValueEncoding, EncodingCode>> = { bytes: 0, json: 1, cbor: 2 };

export type RecordKey = string | Uint8Array | null;
export type HeaderValue = string | Uint8Array;
export type Header = [name: string, value: HeaderValue];

/** A record as producers hand it to a batch: the value already encoded to bytes. */
export interface EncodedRecord {
  key: RecordKey;
  value: Uint8Array | null;
  encoding: ValueEncoding;
  headers: Header[];
  timestamp: number;
}

/** A record read back from a batch. */
export interface StoredRecord extends EncodedRecord {
  offset: number;
  /** The producer's sequence number for this record, or -1 for non-idempotent producers. */
  sequence: number;
}

/**
 * The record limits of LIMITS, checked in one place for every producer path
 * (frames, batches, the client): why a record breaks one, or null.
 */
export function recordLimitFault(key: RecordKey, value: Uint8Array | null, headers: readonly Header[]): { code: ErrorCode; message: string } | null {
  if (key !== null) {
    const n = typeof key === 'string' ? utf8Length(key) : key.length;
    if (n > LIMITS.maxKeyBytes) return { code: 'RECORD_TOO_LARGE', message: `key of ${n} bytes exceeds ${LIMITS.maxKeyBytes}` };
  }
  if (value !== null && value.length > LIMITS.maxValueBytes) return { code: 'RECORD_TOO_LARGE', message: `value of ${value.length} bytes exceeds ${LIMITS.maxValueBytes}` };
  if (headers.length > LIMITS.maxHeaders) return { code: 'BAD_RECORD', message: `${headers.length} headers exceed ${LIMITS.maxHeaders}` };
  for (const [name, v] of headers) {
    const nameBytes = utf8Length(name);
    if (nameBytes > LIMITS.maxHeaderNameBytes) return { code: 'BAD_RECORD', message: `header name of ${nameBytes} bytes exceeds ${LIMITS.maxHeaderNameBytes}` };
    const vb = typeof v === 'string' ? utf8Length(v) : v.length;
    if (vb > LIMITS.maxHeaderValueBytes) return { code: 'BAD_RECORD', message: `header value of ${vb} bytes exceeds ${LIMITS.maxHeaderValueBytes}` };
  }
  return null;
}

const utf8Encoder = new TextEncoder();
const utf8Decoder = new TextDecoder('utf-8', { fatal: true });

export function utf8(s: string): Uint8Array {
  return utf8Encoder.encode(s);
}

/** Decodes UTF-8, throwing TypeError on invalid sequences. */
export function fromUtf8(b: Uint8Array): string {
  return utf8Decoder.decode(b);
}

/** Byte length of a string's UTF-8 form, without allocating. */
export function utf8Length(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        n += 4;
        i++;
      } else n += 3;
    } else n += 3;
  }
  return n;
}

export function toBase64(b: Uint8Array): string {
  let s = '';
  for (let i = 0; i < b.length; i += 0x8000) s += String.fromCharCode.apply(null, b.subarray(i, i + 0x8000) as unknown as number[]);
  return btoa(s);
}

export function fromBase64(s: string): Uint8Array {
  const bin = atob(s);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}
