/**
 * CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), slicing-by-8.
 *
 * Portable for browsers and Workers; the hub uses the native SIMD one from
 * @node-rs/crc32, and a test checks that both agree.
 *
 * Why one flat table and 32-bit word reads: the browser checks every batch
 * it replays with this function. Eight separate tables read a byte at a
 * time ran at 9-18 ns per byte in V8 (a 100-byte event: over 1 µs, the
 * largest single cost of the socket worker, bench/browser-replay.ts); one
 * Int32Array of 8 × 256 entries fed from an Int32Array view of the aligned
 * middle of the input ran at 2.4-4 ns per byte in the same run. Word reads
 * need a little-endian host (every browser engine in use is); elsewhere the
 * byte loop does all of it.
 */

const POLY = 0x82f63b78;
/** Table k at [256·k, 256·k + 256): the CRC of byte n followed by k zero bytes. */
const T = new Int32Array(8 * 256);
for (let n = 0; n < 256; n++) {
  let c = n;
  for (let i = 0; i < 8; i++) c = c & 1 ? (c >>> 1) ^ POLY : c >>> 1;
  T[n] = c;
}
for (let n = 0; n < 256; n++) {
  let c = T[n];
  for (let k = 1; k < 8; k++) {
    c = T[c & 0xff] ^ (c >>> 8);
    T[k * 256 + n] = c;
  }
}

const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;
/** Below this many bytes the word view is not worth its allocation. */
const WORD_LOOP_MIN_BYTES = 64;

/** CRC-32C of bytes[start, end), continuing from `crc` (0 for a fresh checksum). */
export function crc32c(bytes: Uint8Array, start = 0, end = bytes.length, crc = 0): number {
  let c = ~crc;
  let i = start;
  if (LITTLE_ENDIAN && end - i >= WORD_LOOP_MIN_BYTES) {
    while (((bytes.byteOffset + i) & 3) !== 0) c = T[(c ^ bytes[i++]) & 0xff] ^ (c >>> 8);
    const words = new Int32Array(bytes.buffer, bytes.byteOffset + i, ((end - i) >>> 3) << 1);
    const n = words.length;
    for (let j = 0; j < n; j += 2) {
      const a = c ^ words[j];
      const d = words[j + 1];
      c =
        T[1792 + (a & 0xff)] ^
        T[1536 + ((a >>> 8) & 0xff)] ^
        T[1280 + ((a >>> 16) & 0xff)] ^
        T[1024 + (a >>> 24)] ^
        T[768 + (d & 0xff)] ^
        T[512 + ((d >>> 8) & 0xff)] ^
        T[256 + ((d >>> 16) & 0xff)] ^
        T[d >>> 24];
    }
    i += n * 4;
  }
  while (i < end) c = T[(c ^ bytes[i++]) & 0xff] ^ (c >>> 8);
  return ~c >>> 0;
}

export type Crc32c = (bytes: Uint8Array, start?: number, end?: number) => number;
