/**
 * The native SIMD CRC-32C (@node-rs/crc32) behind protocol's `Crc32c` shape.
 * Storage is Node-only, so the engine defaults to it; protocol/crc32c.ts is
 * the portable fallback for browsers and Workers.
 */
import { crc32c } from '@node-rs/crc32';
import type { Crc32c } from '../../protocol/crc32c.ts';

export const nativeCrc32c: Crc32c = (bytes, start = 0, end = bytes.length) =>
  // subarray is a view: no copy of the batch bytes.
  crc32c(start === 0 && end === bytes.length ? bytes : bytes.subarray(start, end));
