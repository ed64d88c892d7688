/**
 * Key → partition, as Kafka's default partitioner does it for keyed records:
 * murmur2 of the key's bytes (UTF-8 for strings) with Kafka's seed
 * 0x9747b28c, made positive with `& 0x7fffffff`, modulo the partition count.
 * A Kafka producer and a Tributary client pick the same partition for a key.
 */
import { utf8 } from './record.ts';

const M = 0x5bd1e995;

/** Kafka's `Utils.murmur2`: a signed 32-bit result, as Java's int. */
export function murmur2(data: Uint8Array, length = data.length): number {
  let h = (0x9747b28c ^ length) | 0;
  const length4 = length >> 2;
  for (let i = 0; i < length4; i++) {
    const i4 = i * 4;
    let k = data[i4] | (data[i4 + 1] << 8) | (data[i4 + 2] << 16) | (data[i4 + 3] << 24);
    k = Math.imul(k, M);
    k ^= k >>> 24;
    k = Math.imul(k, M);
    h = Math.imul(h, M);
    h ^= k;
  }
  const tail = length & ~3;
  switch (length & 3) {
    case 3:
      h ^= data[tail + 2] << 16;
    // falls through
    case 2:
      h ^= data[tail + 1] << 8;
    // falls through
    case 1:
      h ^= data[tail];
      h = Math.imul(h, M);
  }
  h ^= h >>> 13;
  h = Math.imul(h, M);
  h ^= h >>> 15;
  return h | 0;
}

/** The partition Kafka's default partitioner picks for a non-null key. */
export function partitionForKey(key: string | Uint8Array, partitions: number): number {
  if (typeof key !== 'string') return (murmur2(key) & 0x7fffffff) % partitions;
  const h = murmur2Ascii(key) ?? murmur2(scratch, keyToScratch(key));
  return (h & 0x7fffffff) % partitions;
}

/**
 * murmur2 over a string whose chars are all below 0x80 (each char its UTF-8
 * byte), with no bytes written at all; null when one is not. Streams
 * partitions every output by its key with this.
 */
function murmur2Ascii(s: string): number | null {
  const length = s.length;
  let h = (0x9747b28c ^ length) | 0;
  const length4 = length >> 2;
  for (let i = 0; i < length4; i++) {
    const i4 = i * 4;
    const a = s.charCodeAt(i4);
    const b = s.charCodeAt(i4 + 1);
    const c = s.charCodeAt(i4 + 2);
    const d = s.charCodeAt(i4 + 3);
    if ((a | b | c | d) > 0x7f) return null;
    let k = a | (b << 8) | (c << 16) | (d << 24);
    k = Math.imul(k, M);
    k ^= k >>> 24;
    k = Math.imul(k, M);
    h = Math.imul(h, M);
    h ^= k;
  }
  const tail = length & ~3;
  for (let i = tail; i < length; i++) if (s.charCodeAt(i) > 0x7f) return null;
  switch (length & 3) {
    case 3:
      h ^= s.charCodeAt(tail + 2) << 16;
    // falls through
    case 2:
      h ^= s.charCodeAt(tail + 1) << 8;
    // falls through
    case 1:
      h ^= s.charCodeAt(tail);
      h = Math.imul(h, M);
  }
  h ^= h >>> 13;
  h = Math.imul(h, M);
  h ^= h >>> 15;
  return h | 0;
}

/**
 * String keys are hashed from a reused buffer: a client partitions every
 * event it drains, and a fresh TextEncoder result per key was 7% of a
 * Chromium drain's CPU (an ArrayBuffer allocation each).
 */
let scratch = new Uint8Array(256);
const encoder = new TextEncoder();

/** Writes the UTF-8 of `key` at the start of `scratch`; returns its length. */
function keyToScratch(key: string): number {
  if (scratch.length < key.length * 3) scratch = new Uint8Array(key.length * 3);
  let i = 0;
  for (; i < key.length; i++) {
    const c = key.charCodeAt(i);
    if (c > 127) break;
    scratch[i] = c;
  }
  // Past the ASCII prefix (cut before a non-ASCII unit, so never inside a surrogate pair): the encoder.
  return i === key.length ? i : i + encoder.encodeInto(key.slice(i), scratch.subarray(i)).written;
}

/**
 * Partition for a record without a key. An idempotent producer's retry must
 * land where the original did, so the choice is a pure function of the
 * producer id and the record's sequence: runs of `stickyRecords` sequences
 * stay on one partition (like Kafka's sticky partitioner, a batch is not
 * scattered), successive runs rotate from a start given by the producer id.
 * Without a producer id the caller passes a rotating counter as `sequence`.
 */
export function partitionForUnkeyed(producerId: string, sequence: number, partitions: number, stickyRecords = 1024): number {
  const start = producerId ? murmur2(utf8(producerId)) & 0x7fffffff : 0;
  return (start + Math.floor(sequence / stickyRecords)) % partitions;
}
