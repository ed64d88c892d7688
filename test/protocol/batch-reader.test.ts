/**
 * The consumer's batch reader gives exactly what decodeBatches + decodeValue
 * give (values that do not decode as bytes), for any records: JSON that
 * stands alone or not, invalid UTF-8, deep nesting, CBOR, keys of every kind.
 * The lazy reader gives the same once its values are read, and the stored
 * bytes and encoding without reading them. So does a frame indexed by
 * indexFrame (as the socket worker does) and read with readIndexedRecords
 * after crossing a structured clone (as it crosses to the page).
 */
import { describe, expect, it, vi } from 'vitest';
import fc from 'fast-check';
import {
  decodeBatches,
  decodeValue,
  encodeBatch,
  indexFrame,
  indexFrameOrFault,
  readIndexedRecords,
  readLazyRecords,
  readRecords,
  stampBatch,
  crc32c,
  LIMITS,
  type BatchValues,
  type EncodedRecord,
  type Header,
  type RecordKey,
} from '../../protocol/index.ts';
import { RecordsView } from '../../web-client/records-view.ts';

const enc = (s: string) => new TextEncoder().encode(s);

/** JSON-ish texts: valid values, fragments that only parse when joined, and edge cases of the joined parse. */
const arbJsonText = fc.oneof(
  fc.jsonValue({ maxDepth: 4 }).map((v) => JSON.stringify(v)),
  fc.constantFrom('1,2', '[1', '2]', '"a', 'b"', '', ' ', '{}', '[]', '}{', '"\\"', '"\\\\"', 'tru', '\ufeff1', '"é"', '[1]]', '{"a":[1,2]}', '3 4'),
  fc.integer({ min: 60, max: 70 }).map((d) => '['.repeat(d) + ']'.repeat(d)),
  fc.string({ maxLength: 20 }),
);
const arbValue = fc.oneof(
  arbJsonText.map((t) => ({ value: enc(t) as Uint8Array | null, encoding: 'json' as const })),
  fc.uint8Array({ maxLength: 30 }).map((b) => ({ value: b as Uint8Array | null, encoding: 'json' as const })),
  fc.uint8Array({ maxLength: 30 }).map((b) => ({ value: b as Uint8Array | null, encoding: 'bytes' as const })),
  fc.constant({ value: Uint8Array.of(0xa1, 0x61, 0x61, 0x01) as Uint8Array | null, encoding: 'cbor' as const }),
  fc.uint8Array({ maxLength: 10 }).map((b) => ({ value: b as Uint8Array | null, encoding: 'cbor' as const })),
  fc.constant({ value: null, encoding: 'json' as const }),
);
const arbKey: fc.Arbitrary<RecordKey> = fc.oneof(fc.constant(null), fc.string({ maxLength: 12 }), fc.string({ unit: 'grapheme', maxLength: 6 }), fc.uint8Array({ maxLength: 8 }));
const arbHeaders: fc.Arbitrary<Header[]> = fc.array(fc.tuple(fc.string({ maxLength: 6 }), fc.oneof(fc.string({ maxLength: 6 }), fc.uint8Array({ maxLength: 6 }))), { maxLength: 2 });

function expected(b: Uint8Array, from: number) {
  return decodeBatches(b, from).map((r) => {
    let value: unknown;
    try {
      value = decodeValue(r.value, r.encoding);
    } catch {
      value = r.value;
    }
    return { offset: r.offset, timestamp: r.timestamp, key: r.key, value, headers: r.headers };
  });
}

const make = (offset: number, timestamp: number, key: RecordKey, value: unknown, headers: Header[]) => ({ offset, timestamp, key, value, headers });
const makeLazy = (offset: number, timestamp: number, key: RecordKey, headers: Header[], values: BatchValues, i: number) => ({ offset, timestamp, key, headers, values, i });
/** The lazy reader's records with their values read (from the last record first: any read decodes the whole batch). */
const readLazy = (b: Uint8Array, from: number) =>
  readLazyRecords(b, from, makeLazy, crc32c)
    .reverse()
    .map((r) => ({ offset: r.offset, timestamp: r.timestamp, key: r.key, value: r.values.value(r.i), headers: r.headers }))
    .reverse();

/** The onView form's records (web-client/records-view.ts), as the record handler's shape; values read from the last first. */
const viewRecords = (v: RecordsView) => {
  const values = Array.from({ length: v.count }, (_, i) => v.value(v.count - 1 - i)).reverse();
  return Array.from({ length: v.count }, (_, i) => ({ offset: v.offset(i), timestamp: v.timestamp(i), key: v.key(i), value: values[i], headers: v.headers(i) }));
};
/** One view across the property's runs: reused as a subscription reuses it frame after frame. */
const sharedView = new RecordsView('t', 4);

describe('batch reader', () => {
  it('gives what decodeBatches + decodeValue give, for any records and start offset', () => {
    fc.assert(
      fc.property(fc.array(fc.array(fc.record({ key: arbKey, v: arbValue, headers: arbHeaders }), { minLength: 1, maxLength: 12 }), { minLength: 1, maxLength: 3 }), fc.nat(40), (batches, from) => {
        let base = 0;
        const parts = batches.map((recs) => {
          const records: EncodedRecord[] = recs.map((r, i) => ({ key: r.key, value: r.v.value, encoding: r.v.encoding, headers: r.headers, timestamp: 1_700_000_000_000 + i }));
          const b = encodeBatch({ records });
          stampBatch(b, 0, base, 1_700_000_000_500);
          base += records.length;
          return b;
        });
        const all = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
        let o = 0;
        for (const p of parts) {
          all.set(p, o);
          o += p.length;
        }
        const want = expected(all, from);
        expect(readRecords(all, from, make, crc32c)).toEqual(want);
        expect(readLazy(all, from)).toEqual(want);
        expect(readIndexedRecords(all, structuredClone(indexFrame(all, crc32c)), from, make)).toEqual(want);
        const stored = decodeBatches(all, from);
        const lazy = readLazyRecords(all, from, makeLazy, crc32c);
        expect(lazy.map((r) => [r.values.bytes(r.i), r.values.encoding(r.i)])).toEqual(stored.map((r) => [r.value, r.encoding]));
        // The view (no object per record) gives the same records, bytes and encodings; so do a kept copy and its slices.
        const view = sharedView.read(all, 2, from, crc32c);
        expect(view.partition).toBe(2);
        const kept = view.keep();
        const viewBytes = Array.from({ length: view.count }, (_, i) => [view.valueBytes(i), view.valueEncoding(i)]);
        expect(viewBytes).toEqual(stored.map((r) => [r.value, r.encoding]));
        expect(viewRecords(view)).toEqual(want);
        const wantCopy = expected(all.slice(), from);
        all.fill(0); // the frame's bytes reused: the kept copy holds its own
        expect(viewRecords(kept)).toEqual(wantCopy);
        const cut = Math.floor(kept.count / 2);
        expect([...viewRecords(kept.slice(0, cut)), ...viewRecords(kept.slice(cut, kept.count))]).toEqual(wantCopy);
        if (kept.count) expect(kept.record(kept.count - 1)).toMatchObject({ topic: 't', partition: 2, ...wantCopy[wantCopy.length - 1], valueEncoding: stored[stored.length - 1].encoding });
      }),
      { numRuns: 300 },
    );
  });

  it('refuses what decodeBatch refuses: a bad CRC, a string key that is not UTF-8', () => {
    const good = encodeBatch({ records: [{ key: 'k', value: enc('{"a":1}'), encoding: 'json', headers: [], timestamp: 1 }] });
    const flipped = good.slice();
    flipped[flipped.length - 2] ^= 1;
    expect(() => readRecords(flipped, 0, make)).toThrow(expect.objectContaining({ code: 'CORRUPT_BATCH' }));
    const badKey = encodeBatch({ records: [{ key: 'kk', value: null, encoding: 'json', headers: [], timestamp: 1 }] });
    const at = badKey.indexOf(0x6b);
    badKey[at] = 0xc3; // a lead byte followed by 'k': not UTF-8
    stampBatch(badKey, 0, 0, 1);
    expect(() => decodeBatches(badKey)).toThrow(expect.objectContaining({ code: 'BAD_BATCH' }));
    expect(() => readRecords(badKey, 0, make)).toThrow(expect.objectContaining({ code: 'BAD_BATCH' }));
    expect(() => readLazyRecords(flipped, 0, makeLazy)).toThrow(expect.objectContaining({ code: 'CORRUPT_BATCH' }));
    expect(() => readLazyRecords(badKey, 0, makeLazy)).toThrow(expect.objectContaining({ code: 'BAD_BATCH' }));
    const view = new RecordsView('t');
    expect(() => view.read(flipped, 0, 0)).toThrow(expect.objectContaining({ code: 'CORRUPT_BATCH' }));
    expect(() => view.read(badKey, 0, 0)).toThrow(expect.objectContaining({ code: 'BAD_BATCH' }));
    expect(() => view.read(badKey, 0, 5)).toThrow(expect.objectContaining({ code: 'BAD_BATCH' })); // below the position too
    expect(view.count).toBe(0);
    // Indexed off the page: the fault crosses as data and is thrown by the reader, with the same code.
    expect(() => readIndexedRecords(flipped, structuredClone(indexFrameOrFault(flipped, crc32c)), 0, make)).toThrow(expect.objectContaining({ code: 'CORRUPT_BATCH' }));
    expect(() => readIndexedRecords(badKey, structuredClone(indexFrameOrFault(badKey, crc32c)), 0, make)).toThrow(expect.objectContaining({ code: 'BAD_BATCH' }));
  });

  it('a value that is not JSON alone cannot add, drop or shift records of the one JSON.parse', () => {
    // Joined naively, `1],[2` and `1,2` / `[3` / `4]` would parse into arrays of the right length with the wrong values.
    for (const texts of [
      ['{"a":0}', '1],[2', '{"a":3}'],
      ['1,2', '[3', '4]'],
      ['"x"', '"y",', '5'],
      ['[1]', ']', '[', '[2]'],
    ]) {
      const records: EncodedRecord[] = texts.map((t, i) => ({ key: `k${i}`, value: enc(t), encoding: 'json', headers: [], timestamp: i }));
      const b = encodeBatch({ records });
      const want = texts.map((t) => {
        try {
          return JSON.parse(t) as unknown;
        } catch {
          return enc(t); // handed over as bytes, as decodeValue's refusal is
        }
      });
      expect(readRecords(b, 0, make).map((r) => r.value)).toEqual(want);
      expect(readIndexedRecords(b, indexFrame(b, crc32c), 0, make).map((r) => r.value)).toEqual(want);
    }
  });

  it("decodes a large batch's keys and values in parts of at most 64 KiB, with the same results across the parts", () => {
    // ~330 KB of values: several runs, with values that are not JSON alone, a tombstone and one value over 64 KiB among them.
    const texts = Array.from({ length: 3000 }, (_, i) => JSON.stringify({ i, room: `room-${i % 1000}`, pad: 'x'.repeat(60) }));
    texts[5] = '1,2';
    texts[700] = '[3';
    texts[701] = '4]';
    texts[1400] = JSON.stringify({ big: 'y'.repeat(100 * 1024) });
    texts[2999] = 'not json';
    // Keys of 40 ASCII characters (~120 KB of them), and a null key and a bytes key among them.
    const key = (i: number): RecordKey => (i === 10 ? null : i === 11 ? Uint8Array.of(1, 2) : `user-${String(i).padStart(35, '0')}`);
    const records: EncodedRecord[] = texts.map((t, i) => ({ key: key(i), value: i === 2000 ? null : enc(t), encoding: 'json', headers: [], timestamp: i }));
    const b = encodeBatch({ records });
    const want = expected(b, 0);
    const parse = vi.spyOn(JSON, 'parse');
    const decode = vi.spyOn(TextDecoder.prototype, 'decode');
    try {
      expect(readRecords(b, 0, make, crc32c)).toEqual(want);
      expect(readLazy(b, 0)).toEqual(want);
      // The joined texts ('[' + values + ']'): none over the run size plus its brackets, and so several per batch.
      const joined = parse.mock.calls.map(([text]) => text).filter((t) => t.startsWith('[') && t.length > 1000);
      expect(Math.max(...joined.map((t) => t.length))).toBeLessThanOrEqual(64 * 1024 + 2);
      expect(joined.length).toBeGreaterThanOrEqual(2 * 5);
      // Keys and joined values are decoded in parts of at most 64 KiB (the one 100 KiB value aside, decoded alone).
      const sizes = decode.mock.calls.map(([bytes]) => (bytes as Uint8Array).byteLength).filter((n) => n !== texts[1400].length);
      expect(Math.max(...sizes)).toBeLessThanOrEqual(64 * 1024 + 2);
    } finally {
      parse.mockRestore();
      decode.mockRestore();
    }
  });

  it('reads a batch of the largest size twice with the same results (scratch reused, nothing left over)', () => {
    const n = LIMITS.maxRecordsPerBatch;
    const records: EncodedRecord[] = Array.from({ length: n }, (_, i) => ({ key: `user-${i % 100}`, value: enc(JSON.stringify({ i })), encoding: 'json', headers: [], timestamp: i }));
    const b = encodeBatch({ records });
    const first = readRecords(b, 0, make);
    expect(first.map((r) => (r.value as { i: number }).i)).toEqual(Array.from({ length: n }, (_, i) => i));
    expect(readRecords(b, n - 3, make).map((r) => r.key)).toEqual([`user-97`, `user-98`, `user-99`]);
  });
});
