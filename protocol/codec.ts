/**
 * The CBOR codec, configured once for every side. Frames are plain maps with
 * short string keys; byte strings stay untagged so that any CBOR decoder (a
 * device's, a Worker's) reads them as bytes.
 */
import { Encoder } from 'cbor-x';

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

/** Decodes CBOR, throwing on malformed input (callers map that to BAD_FRAME / BAD_CBOR). */
export function decodeCbor(bytes: Uint8Array): unknown {
  return codec.decode(bytes);
}
