import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { murmur2, partitionForKey, partitionForUnkeyed } from '../../protocol/index.ts';

/**
 * Reference: Kafka's Utils.murmur2 (clients/src/main/java/org/apache/kafka/
 * common/utils/Utils.java) transcribed literally with BigInt and explicit
 * 32-bit wrap-around, as Java's int arithmetic does it. It shares no code
 * with protocol/partitioner.ts (which uses Math.imul), so agreement on random
 * inputs checks the fast version against Kafka's published algorithm.
 */
function javaMurmur2(data: Uint8Array): number {
  const int = (x: bigint) => BigInt.asIntN(32, x);
  const ushr = (x: bigint, n: bigint) => BigInt.asUintN(32, x) >> n;
  const length = BigInt(data.length);
  const seed = int(0x9747b28cn);
  const m = 0x5bd1e995n;
  let h = int(seed ^ length);
  const length4 = data.length >> 2;
  for (let i = 0; i < length4; i++) {
    const i4 = i * 4;
    let k = int(BigInt(data[i4]) + (BigInt(data[i4 + 1]) << 8n) + (BigInt(data[i4 + 2]) << 16n) + (BigInt(data[i4 + 3]) << 24n));
    k = int(k * m);
    k = int(k ^ ushr(k, 24n));
    k = int(k * m);
    h = int(h * m);
    h = int(h ^ k);
  }
  const rem = data.length % 4;
  const base = data.length & ~3;
  if (rem === 3) h = int(h ^ (BigInt(data[base + 2]) << 16n));
  if (rem >= 2) h = int(h ^ (BigInt(data[base + 1]) << 8n));
  if (rem >= 1) {
    h = int(h ^ BigInt(data[base]));
    h = int(h * m);
  }
  h = int(h ^ ushr(h, 13n));
  h = int(h * m);
  h = int(h ^ ushr(h, 15n));
  return Number(h);
}

// Kafka's DefaultPartitioner for a keyed record: toPositive(murmur2(keyBytes)) % numPartitions.
const kafkaPartition = (key: string, n: number) => (javaMurmur2(new TextEncoder().encode(key)) & 0x7fffffff) % n;

describe('key → partition, as Kafka picks it', () => {
  it('murmur2 gives the hashes Kafka gives for known keys', () => {
    // Values produced by Kafka's Utils.murmur2, as other Kafka-compatible
    // projects record them in their own tests.
    const known: Array<[string, number]> = [
      ['1', -1993445489],
      ['12', 126087238],
      ['123', -267702483],
      ['1234', -1614185708],
      ['12345', -1188365604],
    ];
    for (const [key, hash] of known) {
      expect(murmur2(new TextEncoder().encode(key))).toBe(hash);
      expect(javaMurmur2(new TextEncoder().encode(key))).toBe(hash);
    }
  });

  it('matches the literal transcription of Kafka on a table of keys and partition counts', () => {
    const keys = ['', 'a', 'order-1', 'order-2', 'user:42', 'sensor/kitchen/temp', 'ünïcødé', '🚀 launch', 'x'.repeat(1000)];
    const counts = [1, 2, 3, 6, 12, 16, 100, 1024];
    for (const k of keys) for (const n of counts) expect(partitionForKey(k, n), `${k} / ${n}`).toBe(kafkaPartition(k, n));
  });

  it('agrees with the transcription on ASCII keys (hashed over their chars) and on keys that leave ASCII anywhere', () => {
    const keys = ['', 'a', 'ab', 'abc', 'abcd', 'room-5@1700000010000', 'x'.repeat(1000), 'ключ', 'k€y', 'emoji😀', 'tail\u0080', '\u007f\u007f\u007f\u007f\u0080'];
    for (let i = 0; i < 2000; i++) keys.push(`k${i}-${String.fromCharCode(32 + (i % 95))}`);
    for (const k of keys) for (const n of [1, 3, 4, 7, 64]) expect(partitionForKey(k, n), `${k} / ${n}`).toBe(kafkaPartition(k, n));
  });

  it('agrees with the transcription on random string keys, one after another (the key buffer is reused)', () => {
    fc.assert(
      fc.property(fc.array(fc.string({ unit: 'grapheme-composite', maxLength: 20 }), { minLength: 1, maxLength: 5 }), fc.integer({ min: 1, max: 1024 }), (keys, n) => {
        for (const k of keys) expect(partitionForKey(k, n), k).toBe(kafkaPartition(k, n));
      }),
      { numRuns: 150 },
    );
  });

  it('agrees with the transcription on random byte keys', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), fc.integer({ min: 1, max: 1024 }), (bytes, n) => {
        expect(murmur2(bytes)).toBe(javaMurmur2(bytes));
        const p = partitionForKey(bytes, n);
        expect(p).toBe((javaMurmur2(bytes) & 0x7fffffff) % n);
        expect(p).toBeGreaterThanOrEqual(0);
        expect(p).toBeLessThan(n);
      }),
      { numRuns: 1000 },
    );
  });

  it('spreads unkeyed records deterministically, in runs, over every partition', () => {
    const seen = new Set<number>();
    for (let seq = 0; seq < 16 * 1024; seq += 1024) seen.add(partitionForUnkeyed('producer-a', seq, 8));
    expect(seen.size).toBe(8);
    expect(partitionForUnkeyed('producer-a', 5, 8)).toBe(partitionForUnkeyed('producer-a', 1000, 8));
    expect(partitionForUnkeyed('producer-a', 77, 8)).toBe(partitionForUnkeyed('producer-a', 77, 8));
  });
});
