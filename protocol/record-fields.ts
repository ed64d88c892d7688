/**
 * Sizes and writers of a record's variable-length fields (key, header, a
 * length-prefixed string or byte string), shared by the batch encoder
 * (batch.ts) and the record-body encoder (record-body.ts).
 */
import type { EncodedRecord, Header } from './record.ts';
import { utf8Length } from './record.ts';
import { uvarintSize, writeUvarint } from './varint.ts';

/** Bytes of a record's key field (length varint and key). */
export function keyBytes(k: EncodedRecord['key']): number {
  if (k === null) return 0;
  const n = typeof k === 'string' ? utf8Length(k) : k.length;
  return uvarintSize(n) + n;
}

/** Bytes of one header (name, kind, value). */
export function headerBytes(h: Header): number {
  const n = utf8Length(h[0]);
  const v = typeof h[1] === 'string' ? utf8Length(h[1]) : h[1].length;
  return uvarintSize(n) + n + 1 + uvarintSize(v) + v;
}

const textEncoder = new TextEncoder();

/** Writes `s` (`len` UTF-8 bytes) with its length prefix; returns the position after it. */
export function writeStr(buf: Uint8Array, pos: number, s: string, len: number): number {
  pos = writeUvarint(buf, pos, len);
  if (len === s.length) {
    // ASCII fast path: utf8Length equal to length means every char is one byte.
    for (let i = 0; i < len; i++) buf[pos + i] = s.charCodeAt(i);
  } else textEncoder.encodeInto(s, buf.subarray(pos, pos + len));
  return pos + len;
}

/** Writes `b` with its length prefix; returns the position after it. */
export function writeBytes(buf: Uint8Array, pos: number, b: Uint8Array): number {
  pos = writeUvarint(buf, pos, b.length);
  buf.set(b, pos);
  return pos + b.length;
}
