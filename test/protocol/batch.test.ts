import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { crc32c as nativeCrc } from '@node-rs/crc32';
import {
  ENCODING_CODE,
  checkBatch,
  decodeBatch,
  decodeBatches,
  decodeRecordBody,
  encodeBatch,
  encodeBodyBatch,
  recordBodySize,
  writeRecordBody,
  readBatchHeader,
  stampBatch,
  batchSizeAt,
  crc32c,
  TributaryError,
  type EncodedRecord,
} from '../../protocol/index.ts';

const native = (b: Uint8Array, s = 0, e = b.length) => nativeCrc(Buffer.from(b.buffer, b.byteOffset + s, e - s));

const arbKey = fc.oneof(fc.constant(null), fc.string({ maxLength: 40 }), fc.uint8Array({ maxLength: 40 }));
const arbHeader = fc.tuple(fc.string({ maxLength: 20 }), fc.oneof(fc.string({ maxLength: 20 }), fc.uint8Array({ maxLength: 20 })));
const arbRecord: fc.Arbitrary<EncodedRecord> = fc.record({
  key: arbKey,
  value: fc.oneof(fc.constant(null), fc.uint8Array({ maxLength: 200 })),
  encoding: fc.constantFrom('bytes' as const, 'json' as const, 'cbor' as const),
  headers: fc.array(arbHeader, { maxLength: 5 }),
  timestamp: fc.integer({ min: 0, max: 2 ** 45 }),
});

function sampleBatch(n = 100, valueBytes = 100): Uint8Array {
  const records: EncodedRecord[] = [];
  for (let i = 0; i < n; i++) {
    records.push({ key: `k${i % 7}`, value: new Uint8Array(valueBytes).fill(i & 0xff), encoding: 'bytes', headers: i % 3 ? [] : [['h', 'v']], timestamp: 1_700_000_000_000 + i });
  }
  return encodeBatch({ producerId: 'producer-1', baseSequence: 1000, records });
}

describe('record batch', () => {
  it('round-trips any records through encode and decode', () => {
    fc.assert(
      fc.property(fc.array(arbRecord, { minLength: 1, maxLength: 30 }), fc.integer({ min: 0, max: 2 ** 50 }), fc.string({ maxLength: 30 }), (records, baseOffset, pid) => {
        const batch = encodeBatch({ records, producerId: pid, baseSequence: pid ? 7 : -1 });
        stampBatch(batch, 0, baseOffset, 1_700_000_000_123, native);
        expect(checkBatch(batch, 0, batch.length, native)).toBeNull();
        const h = readBatchHeader(batch);
        expect(h.baseOffset).toBe(baseOffset);
        expect(h.recordCount).toBe(records.length);
        expect(h.producerId).toBe(pid);
        expect(h.appendTime).toBe(1_700_000_000_123);
        const back = decodeBatch(batch);
        expect(back.length).toBe(records.length);
        back.forEach((r, i) => {
          expect(r.offset).toBe(baseOffset + i);
          expect(r.sequence).toBe(pid ? 7 + i : -1);
          expect(r.timestamp).toBe(records[i].timestamp);
          expect(r.encoding).toBe(records[i].encoding);
          expect(r.key === null ? null : typeof r.key === 'string' ? r.key : Array.from(r.key)).toEqual(
            records[i].key === null ? null : typeof records[i].key === 'string' ? records[i].key : Array.from(records[i].key as Uint8Array),
          );
          expect(r.value === null ? null : Array.from(r.value)).toEqual(records[i].value === null ? null : Array.from(records[i].value!));
          expect(r.headers.map(([n, v]) => [n, typeof v === 'string' ? v : Array.from(v)])).toEqual(records[i].headers.map(([n, v]) => [n, typeof v === 'string' ? v : Array.from(v)]));
        });
      }),
      { numRuns: 200 },
    );
  });

  it('a batch built from record bodies is byte for byte the batch encodeBatch builds, and a body reads back', () => {
    fc.assert(
      fc.property(fc.array(arbRecord, { minLength: 1, maxLength: 30 }), fc.integer({ min: 0, max: 2 ** 40 }), fc.string({ maxLength: 30 }), (records, seq, pid) => {
        // Bodies side by side in one buffer, as the client's slabs hold them.
        const slab = new Uint8Array(records.reduce((n, r) => n + recordBodySize(r.key, r.value, r.headers), 0) + 3);
        let pos = 3;
        const bodies = records.map((r) => {
          const start = pos;
          pos = writeRecordBody(slab, pos, r.key, r.value, ENCODING_CODE[r.encoding], r.headers);
          return slab.subarray(start, pos);
        });
        const fromBodies = encodeBodyBatch(
          pid,
          seq,
          bodies,
          records.map((r) => r.timestamp),
          native,
        );
        expect(fromBodies).toEqual(encodeBatch({ records, producerId: pid, baseSequence: seq, appendTime: -1 }, native));
        for (let i = 0; i < records.length; i++) {
          const r = records[i];
          expect(decodeRecordBody(bodies[i])).toEqual({ key: r.key, value: r.value, encoding: ENCODING_CODE[r.encoding], headers: r.headers });
        }
      }),
      { numRuns: 200 },
    );
  });

  it('keeps non-contiguous sequences and offset gaps', () => {
    const recs = [0, 1, 2].map((i) => ({ key: null, value: new Uint8Array([i]), encoding: 'bytes' as const, headers: [], timestamp: 5 }));
    const b = encodeBatch({ producerId: 'p', baseSequence: 10, records: recs.map((r, i) => ({ ...r, sequenceDelta: i * 3, offsetDelta: i * 2 })) });
    setBase(b, 100);
    expect(decodeBatch(b).map((r) => [r.offset, r.sequence])).toEqual([
      [100, 10],
      [102, 13],
      [104, 16],
    ]);
    expect(readBatchHeader(b).lastOffsetDelta).toBe(4);
    expect(readBatchHeader(b).lastSequenceDelta).toBe(6);
  });

  it('detects any single flipped bit in the checksummed bytes', () => {
    const batch = sampleBatch(10, 20);
    for (let byte = 13; byte < batch.length; byte++) {
      for (let bit = 0; bit < 8; bit++) {
        const copy = batch.slice();
        copy[byte] ^= 1 << bit;
        expect(checkBatch(copy, 0, copy.length, native), `byte ${byte} bit ${bit}`).not.toBeNull();
      }
    }
  });

  it('never throws on truncated or random bytes, and says what is wrong', () => {
    const batch = sampleBatch(5, 10);
    for (let cut = 0; cut < batch.length; cut++) expect(checkBatch(batch.subarray(0, cut))).toBe('truncated');
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        const fault = checkBatch(bytes);
        expect(fault === null || typeof fault === 'string').toBe(true);
        try {
          decodeBatches(bytes);
        } catch (e) {
          expect(e).toBeInstanceOf(TributaryError);
        }
      }),
      { numRuns: 500 },
    );
  });

  it('rejects a batch whose records do not parse even with a valid CRC', () => {
    const batch = sampleBatch(3, 10);
    batch[batch.length - 1] ^= 0xff; // corrupt the last record's tail, then fix the CRC
    stampBatch(batch, 0, 0, 1, native);
    expect(checkBatch(batch, 0, batch.length, native)).toBe('bad-records');
    expect(() => decodeBatch(batch)).toThrow(TributaryError);
  });

  it('walks batches laid end to end and skips records below a start offset', () => {
    const a = sampleBatch(3, 4);
    const b = sampleBatch(3, 4);
    setBase(a, 0);
    setBase(b, 3);
    const both = new Uint8Array(a.length + b.length);
    both.set(a);
    both.set(b, a.length);
    expect(batchSizeAt(both, 0)).toBe(a.length);
    expect(decodeBatches(both, 2).map((r) => r.offset)).toEqual([2, 3, 4, 5]);
  });

  it('refuses empty and oversized batches with typed errors', () => {
    expect(() => encodeBatch({ records: [] })).toThrow(TributaryError);
    const many = Array.from({ length: 10_001 }, () => ({ key: null, value: null, encoding: 'bytes' as const, headers: [], timestamp: 0 }));
    expect(() => encodeBatch({ records: many })).toThrow(/exceed/);
  });
});

function setBase(b: Uint8Array, off: number): void {
  stampBatch(b, 0, off, 1, crc32c);
}

describe('CRC-32C', () => {
  it('has the standard check value', () => {
    expect(crc32c(new TextEncoder().encode('123456789'))).toBe(0xe3069283);
  });
  it('the portable table-driven one agrees with the native SIMD one', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 2000, size: 'max' }), fc.nat(40), (bytes, skip) => {
        const start = Math.min(skip, bytes.length);
        expect(crc32c(bytes, start, bytes.length)).toBe(native(bytes, start, bytes.length));
      }),
      { numRuns: 300 },
    );
  });
  it('agrees at any alignment of the view and any end, and continues a running checksum', () => {
    // The portable one reads aligned 32-bit words from the view's buffer: a view at byte offset 1-7 and an end short of it must not shift them.
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 700, size: 'max' }), fc.nat(7), fc.nat(40), fc.nat(40), (raw, shift, skip, cut) => {
        const view = raw.subarray(Math.min(shift, raw.length));
        const start = Math.min(skip, view.length);
        const end = Math.max(start, view.length - cut);
        expect(crc32c(view, start, end)).toBe(native(view, start, end));
        const mid = start + ((end - start) >> 1);
        expect(crc32c(view, mid, end, crc32c(view, start, mid))).toBe(native(view, start, end));
      }),
      { numRuns: 500 },
    );
  });
});

describe('UTF-8 validation in the deep check', () => {
  it('agrees with a fatal TextDecoder on random bytes', async () => {
    const { isValidUtf8: isUtf8 } = await import('../../protocol/cbor-scan.ts');
    const strict = new TextDecoder('utf-8', { fatal: true });
    const valid = (b: Uint8Array) => {
      try {
        strict.decode(b);
        return true;
      } catch {
        return false;
      }
    };
    fc.assert(
      fc.property(
        fc.oneof(
          fc.uint8Array({ maxLength: 12 }),
          fc.string({ unit: 'binary', maxLength: 8 }).map((s) => new TextEncoder().encode(s)),
        ),
        (b) => {
          expect(isUtf8(b, 0, b.length)).toBe(valid(b));
        },
      ),
      { numRuns: 5000 },
    );
    for (const bad of [[0xc0, 0x80], [0xed, 0xa0, 0x80], [0xf4, 0x90, 0x80, 0x80], [0xe2, 0x82], [0xff]]) expect(isUtf8(new Uint8Array(bad), 0, bad.length)).toBe(false);
  });

  it('refuses a batch whose string key is not UTF-8, though its CRC is right', () => {
    const batch = encodeBatch({ records: [{ key: 'ab', value: null, encoding: 'bytes', headers: [], timestamp: 1 }] });
    const at = batch.indexOf(0x61); // the key's first byte
    batch[at] = 0xff;
    stampBatch(batch, 0, 0, 1, native);
    expect(checkBatch(batch, 0, batch.length, native, false)).toBeNull();
    expect(checkBatch(batch, 0, batch.length, native, true)).toBe('bad-records');
  });
});
