/**
 * partitionForKey (murmur2 of the key's UTF-8 bytes, as Kafka picks) for the
 * string keys a sink writes, without a byte array per record: for an ASCII
 * key every char is its byte, so murmur2 runs over the char codes. Other
 * keys take protocol's partitionForKey. Same answer for every key
 * (test/streams/topology.test.ts compares them).
 */
import { partitionForKey } from '../protocol/index.ts';

const M = 0x5bd1e995;

/** Kafka's murmur2 (seed 0x9747b28c) over a string whose chars are all below 0x80; null when one is not. */
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
  const rest = length & 3;
  for (let i = tail; i < length; i++) if (s.charCodeAt(i) > 0x7f) return null;
  switch (rest) {
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

export function keyPartition(key: string, partitions: number): number {
  const h = murmur2Ascii(key);
  return h === null ? partitionForKey(key, partitions) : (h & 0x7fffffff) % partitions;
}
