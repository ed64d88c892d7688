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
  it("encodeValue's JSON bytes (pooled, encoded once from 32 chars) are the UTF-8 of the JSON text", () => {
    const values: unknown[] = [
      { s: 'x' },
      'x'.repeat(125),
      'x'.repeat(126),
      '€'.repeat(48),
      { t: 'naïve 😀 \ud800' },
      ['ü'.repeat(300)],
      'z'.repeat(2_046),
      '€'.repeat(2_046),
      { big: 'y'.repeat(5_000) },
    ];
    // Several times over: the pool's slab rolls over between them.
    const all = Array.from({ length: 12 }, () => values).flat();
    const got = all.map((v) => encodeValue(v).value!);
    // Buffer.compare: toEqual over kilobytes of arrays takes seconds.
    all.forEach((v, i) => expect(Buffer.compare(got[i], utf8(JSON.stringify(v))), `value ${i}`).toBe(0));
  });
});
