/**
 * One pass over untrusted CBOR before cbor-x decodes it, for the two things
 * cbor-x does not refuse: nesting deep enough to exhaust the stack (it
 * recurses, so 100,000 nested arrays end in "Maximum call stack size
 * exceeded"), and text strings that are not UTF-8 (it decodes them lossily,
 * with U+FFFD, so a key would be silently rewritten).
 *
 * The scan reads item heads only and jumps over byte strings, so its cost
 * is per item, not per byte: a produce frame of pre-encoded batches is a
 * dozen items whatever its size. Text strings are checked byte by byte
 * (ASCII runs cheaply). It is iterative: depth costs an array slot, never
 * a stack frame. RFC 8949 §3 (encoding), §3.2 (indefinite lengths), §3.4
 * (tags); text must be UTF-8 (RFC 8949 §3.1, major type 3).
 */
import { TributaryError } from './errors.ts';

export interface CborScan {
  /** A text string somewhere in the item is not valid UTF-8. */
  invalidText: boolean;
}

class Malformed extends Error {}

/**
 * Whether bytes[start, end) is well-formed UTF-8 (RFC 3629 §4: no overlong
 * forms, no surrogates, nothing above U+10FFFF).
 */
export function isValidUtf8(b: Uint8Array, start = 0, end = b.length): boolean {
  let i = start;
  while (i < end) {
    if (b[i] < 0x80) i++;
    else if ((i = utf8SequenceEnd(b, i, end)) < 0) return false;
  }
  return true;
}

/**
 * b[i] is a byte ≥ 0x80: the index after the well-formed UTF-8 sequence it
 * starts (ending at or before `end`), or -1 (RFC 3629 §4, as isValidUtf8).
 */
export function utf8SequenceEnd(b: Uint8Array, i: number, end: number): number {
  const c = b[i];
  if (c < 0xc2) return -1; // a continuation byte first, or an overlong 2-byte form
  if (c < 0xe0) {
    if (i + 1 >= end || (b[i + 1] & 0xc0) !== 0x80) return -1;
    return i + 2;
  }
  if (c < 0xf0) {
    if (i + 2 >= end) return -1;
    const c1 = b[i + 1];
    if ((c1 & 0xc0) !== 0x80 || (b[i + 2] & 0xc0) !== 0x80) return -1;
    if (c === 0xe0 && c1 < 0xa0) return -1; // overlong
    if (c === 0xed && c1 >= 0xa0) return -1; // UTF-16 surrogate
    return i + 3;
  }
  if (c < 0xf5) {
    if (i + 3 >= end) return -1;
    const c1 = b[i + 1];
    if ((c1 & 0xc0) !== 0x80 || (b[i + 2] & 0xc0) !== 0x80 || (b[i + 3] & 0xc0) !== 0x80) return -1;
    if (c === 0xf0 && c1 < 0x90) return -1; // overlong
    if (c === 0xf4 && c1 >= 0x90) return -1; // above U+10FFFF
    return i + 4;
  }
  return -1;
}

/** Marks an open indefinite-length container on the stack. */
const INDEFINITE = -1;

/** The argument readArgument last read (module state: no allocation per item). */
const argument = { value: 0 };

/** Reads the argument that additional information `ai` announces (RFC 8949 §3); returns the position after it. */
function readArgument(bytes: Uint8Array, pos: number, ai: number, end: number): number {
  if (ai < 24) {
    argument.value = ai;
    return pos;
  }
  if (ai >= 28) {
    if (ai === 31) {
      argument.value = ai; // indefinite length: the caller checks
      return pos;
    }
    throw new Malformed('reserved additional information');
  }
  const n = ai === 24 ? 1 : ai === 25 ? 2 : ai === 26 ? 4 : 8;
  if (pos + n > end) throw new Malformed('truncated');
  if (n === 1) argument.value = bytes[pos];
  else if (n === 2) argument.value = (bytes[pos] << 8) | bytes[pos + 1];
  else if (n === 4) argument.value = ((bytes[pos] << 24) >>> 0) + ((bytes[pos + 1] << 16) | (bytes[pos + 2] << 8) | bytes[pos + 3]);
  else {
    // Lengths past 2^53 cannot fit any buffer; the exact value only matters for lengths and counts.
    argument.value =
      (((bytes[pos] << 24) >>> 0) + ((bytes[pos + 1] << 16) | (bytes[pos + 2] << 8) | bytes[pos + 3])) * 2 ** 32 +
      ((bytes[pos + 4] << 24) >>> 0) +
      ((bytes[pos + 5] << 16) | (bytes[pos + 6] << 8) | bytes[pos + 7]);
  }
  return pos + n;
}

/**
 * Scans the first CBOR item of `bytes`. Throws TributaryError BAD_CBOR
 * when it nests deeper than `maxDepth` (arrays, maps and tags each count a
 * level), and a plain Error when it is malformed or truncated (the caller
 * says "not valid CBOR"). Trailing bytes are left to the decoder.
 */
export function scanCbor(bytes: Uint8Array, maxDepth: number): CborScan {
  const end = bytes.length;
  // Items still to read in each open container (INDEFINITE: until a break).
  const remaining: number[] = [];
  let invalidText = false;
  let pos = 0;
  for (;;) {
    if (pos >= end) throw new Malformed('truncated');
    const ib = bytes[pos++];
    const major = ib >> 5;
    const ai = ib & 0x1f;
    if (ib === 0xff) {
      // break: closes the innermost indefinite container
      if (remaining.length === 0 || remaining[remaining.length - 1] !== INDEFINITE) throw new Malformed('unexpected break');
      remaining.pop();
    } else {
      pos = readArgument(bytes, pos, ai, end);
      const arg = argument.value;
      const indefinite = ai === 31;
      switch (major) {
        case 0:
        case 1:
          if (indefinite) throw new Malformed('indefinite integer');
          break;
        case 2:
        case 3:
          if (indefinite) {
            // Chunks follow, each a definite string of the same major type (each chunk is checked on its own).
            if (remaining.length >= maxDepth) throw tooDeep(maxDepth);
            remaining.push(INDEFINITE);
            continue;
          }
          if (arg > end - pos) throw new Malformed('truncated');
          if (major === 3 && !invalidText) {
            // ASCII inline (keys and most names are): the full check only from the first byte above 0x7f.
            let i = pos;
            const stop = pos + arg;
            while (i < stop && bytes[i] < 0x80) i++;
            if (i < stop && !isValidUtf8(bytes, i, stop)) invalidText = true;
          }
          pos += arg;
          break;
        case 4:
        case 5:
          if (remaining.length >= maxDepth) throw tooDeep(maxDepth);
          if (indefinite) {
            remaining.push(INDEFINITE);
            continue;
          }
          if (arg > 0) {
            // Every item takes at least a byte: a count beyond what is left is truncated, not a loop.
            const items = major === 5 ? arg * 2 : arg;
            if (items > end - pos) throw new Malformed('truncated');
            remaining.push(items);
            continue;
          }
          break;
        case 6:
          if (indefinite) throw new Malformed('indefinite tag');
          if (remaining.length >= maxDepth) throw tooDeep(maxDepth);
          remaining.push(1); // the tagged item
          continue;
        case 7:
          if (indefinite) throw new Malformed('unexpected break');
          break;
      }
    }
    // One item finished: count it against its containers, closing those it completes.
    while (remaining.length > 0) {
      const top = remaining.length - 1;
      if (remaining[top] === INDEFINITE) break;
      if (--remaining[top] > 0) break;
      remaining.pop();
    }
    if (remaining.length === 0) return { invalidText };
  }
}

function tooDeep(maxDepth: number): TributaryError {
  return new TributaryError('BAD_CBOR', `is nested deeper than ${maxDepth} levels (arrays, maps and tags; the limit is maxNestingDepth)`);
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
const suspect = (s: string): boolean => s.includes('\uFFFD') || LONE_SURROGATE.test(s);

/**
 * After a scan found invalid UTF-8: the path of the first decoded string
 * (map key or value) that shows it (`records[0].h[1][0]`), for the error
 * message. Runs only on refused input. Undefined when nothing shows it.
 */
export function findInvalidText(value: unknown, maxDepth: number): string | undefined {
  const stack: Array<[unknown, string, number]> = [[value, '', 0]];
  while (stack.length > 0) {
    const [v, path, depth] = stack.pop()!;
    if (typeof v === 'string') {
      if (suspect(v)) return path;
      continue;
    }
    if (depth > maxDepth || typeof v !== 'object' || v === null || v instanceof Uint8Array) continue;
    if (Array.isArray(v)) {
      for (let i = v.length - 1; i >= 0; i--) stack.push([v[i], `${path}[${i}]`, depth + 1]);
      continue;
    }
    const entries = v instanceof Map ? [...v.entries()] : Object.entries(v);
    for (let i = entries.length - 1; i >= 0; i--) {
      const [k, item] = entries[i];
      const name = `${path}${path ? '.' : ''}${String(k)}`;
      if (typeof k === 'string' && suspect(k)) return `${name} (a map key)`;
      stack.push([item, name, depth + 1]);
    }
  }
  return undefined;
}
