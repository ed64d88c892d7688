import { crc32c } from '@node-rs/crc32';
import type { Crc32c } from '../../protocol/crc32c.ts';

/** Native CRC-32C in protocol's `Crc32c` shape (the load encodes batches as a Node producer would). */
export const nativeCrc32c: Crc32c = (bytes, start = 0, end = bytes.length) => crc32c(start === 0 && end === bytes.length ? bytes : bytes.subarray(start, end));
