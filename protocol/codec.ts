/**
 * The CBOR codec, configured once for every side. Frames are plain maps with
 * short string keys; byte strings stay untagged so that any CBOR decoder (a
 * device's, a Worker's) reads them as bytes.
 */
import { Encoder } from 'cbor-x';
import { findInvalidText, scanCbor } from './cbor-scan.ts';
import { TributaryError } from './errors.ts';
import { LIMITS } from './limits.ts';

const codec = new Encoder({
  useRecords: false,
  mapsAsObjects: true,
  tagUint8Array: false,
  // Plain JS objects only: no shared structures between hub and clients.
  structuredClone: false,
  useFloat32: 0,
});

export function encodeCbor(value: unknown): Uint8Array {
  return codec.encode(value);
}

/**
 * Decodes untrusted CBOR and says whether a text string in it was not
 * UTF-8 (cbor-x would have replaced its bytes with U+FFFD: the caller must
 * refuse it, see findInvalidText). Throws TributaryError BAD_CBOR when it
 * nests deeper than LIMITS.maxNestingDepth, any other error when malformed.
 */
export function decodeCborChecked(bytes: Uint8Array): { value: unknown; invalidText: boolean } {
  const { invalidText } = scanCbor(bytes, LIMITS.maxNestingDepth);
  return { value: codec.decode(bytes), invalidText };
}

/**
 * Decodes CBOR, throwing on malformed input, on nesting deeper than
 * LIMITS.maxNestingDepth and on text that is not UTF-8 (TributaryError
 * BAD_CBOR for those two; callers map the rest to BAD_FRAME / BAD_CBOR).
 */
export function decodeCbor(bytes: Uint8Array): unknown {
  const { value, invalidText } = decodeCborChecked(bytes);
  if (invalidText) {
    const where = findInvalidText(value, LIMITS.maxNestingDepth);
    throw new TributaryError('BAD_CBOR', `${where === undefined ? 'a text string' : where} is not valid UTF-8`);
  }
  return value;
}

/**
 * A `records` frame whose batch bytes are given in several buffers (a
 * JetStream read: one per message), written into the frame with one copy:
 * the same frame as encodeCbor({ t, sub, topic, p, b, hw }) with `b` the
 * parts joined, without joining them first. The map's other entries come
 * from encodeCbor; `b` is appended as a byte string (CBOR major type 2).
 * `into(length)`, when given, returns a buffer of at least `length` bytes to
 * write the frame into (the result is a view of it), instead of a new one.
 */
export function encodeRecordsFrame(
  sub: number,
  topic: string,
  partition: number,
  parts: readonly Uint8Array[],
  size: number,
  highWatermark: number,
  into?: (length: number) => Uint8Array,
): Uint8Array {
  const head = codec.encode({ t: 'records', sub, topic, p: partition, hw: highWatermark });
  // Five entries; the map's count (in the header byte, or the 1- or 2-byte length cbor-x may use) becomes six.
  const countAt = head[0] === 0xa5 ? 0 : head[0] === 0xb8 ? 1 : head[0] === 0xb9 ? 2 : -1;
  if (countAt < 0 || (head[countAt] & 0x1f) !== 5) throw new Error('records frame: unexpected map header');
  const lenBytes = size < 24 ? 0 : size < 0x100 ? 1 : size < 0x10000 ? 2 : 4;
  const length = head.length + 2 + 1 + lenBytes + size;
  // With `into`, the caller's reused buffer (every byte of the frame is written below): no fresh memory per frame.
  const out = into ? into(length).subarray(0, length) : new Uint8Array(length);
  out.set(head, 0);
  out[countAt] += 1;
  let pos = head.length;
  out[pos++] = 0x61; // text string of 1 byte: "b"
  out[pos++] = 0x62;
  if (lenBytes === 0) out[pos++] = 0x40 | size;
  else {
    out[pos++] = lenBytes === 1 ? 0x58 : lenBytes === 2 ? 0x59 : 0x5a;
    for (let i = lenBytes - 1; i >= 0; i--) out[pos++] = (size / 2 ** (8 * i)) & 0xff;
  }
  for (const b of parts) {
    out.set(b, pos);
    pos += b.length;
  }
  if (pos !== out.length) throw new Error(`records frame: parts hold ${pos - (out.length - size)} bytes, not ${size}`);
  return out;
}
