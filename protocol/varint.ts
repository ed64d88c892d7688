/**
 * Unsigned LEB128 and zig-zag varints over JS numbers up to 2^53.
 * Small values (the common case: deltas, lengths) take the bitwise fast path.
 */

export function uvarintSize(n: number): number {
  let size = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 128);
    size++;
  }
  return size;
}

export function writeUvarint(buf: Uint8Array, pos: number, n: number): number {
  if (n < 0x80) {
    buf[pos] = n;
    return pos + 1;
  }
  while (n >= 0x80) {
    buf[pos++] = (n % 128) | 0x80;
    n = Math.floor(n / 128);
  }
  buf[pos++] = n;
  return pos;
}

/** Result of a varint read: the value and the position after it, or -1 as position when truncated or too long. */
export interface VarintRead {
  value: number;
  pos: number;
}

/** Reads an unsigned varint of at most 8 bytes (2^56). Sets out.pos = -1 on truncation or overlong input. */
export function readUvarint(buf: Uint8Array, pos: number, end: number, out: VarintRead): void {
  let result = 0;
  let mul = 1;
  for (let i = 0; i < 8; i++) {
    if (pos >= end) {
      out.pos = -1;
      return;
    }
    const b = buf[pos++];
    result += (b & 0x7f) * mul;
    if (b < 0x80) {
      out.value = result;
      out.pos = pos;
      return;
    }
    mul *= 128;
  }
  out.pos = -1;
}

export function zigzag(n: number): number {
  return n >= 0 ? n * 2 : -n * 2 - 1;
}

export function unzigzag(z: number): number {
  return z % 2 === 0 ? z / 2 : -(z + 1) / 2;
}
