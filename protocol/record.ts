/**
 * The record model, the same in every API.
 *
 * - key: a UTF-8 string, bytes, or null;
 * - value: bytes tagged with an encoding (`json`: UTF-8 JSON text, `cbor`,
 *   `bytes`), or null (a tombstone);
 * - headers: ordered [name, value] pairs, string name, string or bytes value;
 * - timestamp: ms since the epoch, set by the producer when the event happened.
 */

export type ValueEncoding = 'bytes' | 'json' | 'cbor';
export const VALUE_ENCODINGS: readonly ValueEncoding[] = ['bytes', 'json', 'cbor'];

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
