import { describe, expect, it } from 'vitest';
import { isValidUtf8, scanCbor } from '../../protocol/cbor-scan.ts';
import { decodeCbor, encodeCbor } from '../../protocol/codec.ts';
import { jsonNestsDeeperThan } from '../../protocol/json-depth.ts';

const fatal = new TextDecoder('utf-8', { fatal: true });
const validByDecoder = (b: Uint8Array): boolean => {
  try {
    fatal.decode(b);
    return true;
  } catch {
    return false;
  }
};

/** A deterministic PRNG, so a failure reproduces. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32;
}

describe('isValidUtf8', () => {
  it('agrees with a fatal TextDecoder on edge cases and on 20,000 random byte strings', () => {
    const cases = [
      [],
      [0x41],
      [0xc3, 0x28],
      [0xc0, 0x80],
      [0xc2, 0x80],
      [0xe0, 0x80, 0x80],
      [0xe0, 0xa0, 0x80],
      [0xed, 0x9f, 0xbf],
      [0xed, 0xa0, 0x80],
      [0xef, 0xbf, 0xbd],
      [0xf0, 0x8f, 0xbf, 0xbf],
      [0xf0, 0x90, 0x80, 0x80],
      [0xf4, 0x8f, 0xbf, 0xbf],
      [0xf4, 0x90, 0x80, 0x80],
      [0xf5, 0x80, 0x80, 0x80],
      [0xe2, 0x82],
      [0xf0, 0x9f, 0x98],
      [0x80],
      [0xff],
    ];
    for (const c of cases) expect(isValidUtf8(Uint8Array.from(c)), c.join(' ')).toBe(validByDecoder(Uint8Array.from(c)));
    const r = rng(12);
    const alphabet = [0x41, 0x7f, 0x80, 0xbf, 0xc2, 0xc3, 0xdf, 0xe0, 0xe1, 0xed, 0xef, 0xf0, 0xf4, 0xf5, 0x90, 0xa0, 0x9f];
    for (let n = 0; n < 20_000; n++) {
      const b = Uint8Array.from({ length: 1 + Math.floor(r() * 8) }, () => (r() < 0.5 ? alphabet[Math.floor(r() * alphabet.length)] : Math.floor(r() * 256)));
      expect(isValidUtf8(b), [...b].join(' ')).toBe(validByDecoder(b));
    }
  });
});

describe('scanCbor', () => {
  it('passes everything the codec encodes, and finds no invalid text in it', () => {
    const values: unknown[] = [
      0,
      -1,
      2 ** 40,
      -(2 ** 40),
      1.5,
      true,
      null,
      undefined,
      'héllo ✓ 😀',
      new Uint8Array(300),
      [],
      {},
      { a: [1, { b: 'x' }] },
      {
        t: 'produce',
        id: 7,
        topic: 'orders',
        records: [
          {
            k: 'k',
            v: new Uint8Array([1, 2]),
            h: [
              ['n', 'v'],
              ['b', new Uint8Array(1)],
            ],
            ts: Date.now(),
          },
        ],
      },
      'x'.repeat(70_000),
      Array.from({ length: 1000 }, (_, i) => i),
      new Date(0),
    ];
    for (const v of values) expect(scanCbor(encodeCbor(v), 64), JSON.stringify(v)?.slice(0, 40)).toEqual({ invalidText: false });
  });

  it('counts arrays, maps and tags toward the depth, and throws past it with a clear message', () => {
    let v: unknown = 0;
    for (let i = 0; i < 64; i++) v = [v];
    expect(scanCbor(encodeCbor(v), 64).invalidText).toBe(false);
    expect(() => scanCbor(encodeCbor([v]), 64)).toThrow(/nested deeper than 64 levels/);
    // indefinite-length arrays and tags too
    expect(() => scanCbor(new Uint8Array([...new Array(65).fill(0x9f), 0x00, ...new Array(65).fill(0xff)]), 64)).toThrow(/deeper/);
    expect(() => scanCbor(new Uint8Array([...new Array(65).fill(0xc1), 0x00]), 64)).toThrow(/deeper/);
    expect(() => decodeCbor(new Uint8Array([...new Array(100_000).fill(0x81), 0x00]))).toThrow(/nested deeper than 64 levels/);
  });

  it('refuses malformed and truncated input without reading past the end', () => {
    for (const bad of [[], [0x82, 0x00], [0x62, 0x41], [0x5a, 0xff, 0xff, 0xff, 0xff], [0x1c], [0xff], [0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff], [0x1f]]) {
      expect(() => scanCbor(Uint8Array.from(bad), 64), bad.join(' ')).toThrow();
    }
  });

  it('flags invalid UTF-8 in a text string, a map key or a chunk of an indefinite text string; decodeCbor then refuses', () => {
    expect(scanCbor(Uint8Array.from([0x62, 0xc3, 0x28]), 64).invalidText).toBe(true);
    expect(scanCbor(Uint8Array.from([0xa1, 0x62, 0xc3, 0x28, 0x00]), 64).invalidText).toBe(true);
    expect(scanCbor(Uint8Array.from([0x7f, 0x61, 0x41, 0x61, 0xc3, 0xff]), 64).invalidText).toBe(true);
    expect(scanCbor(Uint8Array.from([0x42, 0xc3, 0x28]), 64).invalidText).toBe(false); // bytes are bytes
    expect(() => decodeCbor(Uint8Array.from([0xa1, 0x61, 0x6b, 0x62, 0xc3, 0x28]))).toThrow(/k is not valid UTF-8/);
  });
});

describe('jsonNestsDeeperThan', () => {
  it('counts brackets outside strings only', () => {
    expect(jsonNestsDeeperThan('[[[]]]', 3)).toBe(false);
    expect(jsonNestsDeeperThan('[[[[]]]]', 3)).toBe(true);
    expect(jsonNestsDeeperThan('["[[[[[[", {"a": "\\"[[[["}]', 3)).toBe(false);
  });
});
