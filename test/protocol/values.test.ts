/**
 * encodeValue's JSON bytes come out of shared slabs: every value must keep
 * its own bytes, whatever is encoded after it (slab roll-over included).
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { encodeValue } from '../../protocol/index.ts';

const utf8 = (s: string) => new TextEncoder().encode(s);

describe('encodeValue (json)', () => {
  it('gives each value the UTF-8 of its JSON text, unchanged by the values encoded after it', () => {
    fc.assert(
      fc.property(fc.array(fc.jsonValue({ maxDepth: 3 }), { minLength: 1, maxLength: 60 }), (values) => {
        const got = values.map((v) => encodeValue(v).value);
        values.forEach((v, i) => expect(got[i]).toEqual(v === null ? null : utf8(JSON.stringify(v))));
      }),
      { numRuns: 100 },
    );
    // Past several slabs, with non-ASCII text and texts too long for a slab.
    const values = Array.from({ length: 3_000 }, (_, i) => ({ i, s: i % 3 ? 'x'.repeat(i % 97) : `ünï🚀${i}`, big: i % 1000 === 0 ? 'y'.repeat(5_000) : undefined }));
    const got = values.map((v) => encodeValue(v).value);
    values.forEach((v, i) => expect(got[i]).toEqual(utf8(JSON.stringify(v))));
  });
});
