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
