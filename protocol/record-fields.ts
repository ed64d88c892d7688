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

/**
 * Writes `s`'s UTF-8 with its length prefix, encoded once by encodeInto
 * (`buf` has room for the prefix and 3 bytes a char after `pos`): the prefix
 * is sized for ASCII, the usual case, and the bytes are moved when the real
 * one is longer. Returns the UTF-8's byte count (the value starts at
 * pos + uvarintSize(count)), or -1 when it exceeds `maxBytes` (nothing valid
 * written).
 */
export function writeUtf8Once(buf: Uint8Array, pos: number, s: string, maxBytes: number): number {
  const guess = uvarintSize(s.length);
  const at = pos + guess;
  const { written } = textEncoder.encodeInto(s, buf.subarray(at, at + 3 * s.length));
  if (written > maxBytes) return -1;
  const lenSize = uvarintSize(written);
  if (lenSize !== guess) buf.copyWithin(pos + lenSize, at, at + written);
  writeUvarint(buf, pos, written);
  return written;
}

/** Writes `b` with its length prefix; returns the position after it. */
export function writeBytes(buf: Uint8Array, pos: number, b: Uint8Array): number {
  pos = writeUvarint(buf, pos, b.length);
  buf.set(b, pos);
  return pos + b.length;
}
