/**
 * The IndexedDB outbox's chunk columns (web-client/outbox-idb-chunk.ts):
 * whatever a group commit holds comes back the same after structured clone
 * (what IndexedDB does to a record), and a chunk of the CBOR form older
 * versions wrote still reads.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { encodeCbor, type WireRecord } from '../../protocol/index.ts';
import { recordBody } from '../../web-client/event-input.ts';
import { decodeChunk, encodeChunk } from '../../web-client/outbox-idb-chunk.ts';
import type { OutboxEvent } from '../../web-client/outbox.ts';

const bytes = fc.uint8Array({ maxLength: 40 });
const record: fc.Arbitrary<WireRecord> = fc
  .record(
    {
      k: fc.oneof(fc.string({ unit: 'grapheme', maxLength: 12 }), bytes),
      v: fc.oneof(bytes, fc.constant(null)),
      e: fc.constantFrom(1 as const, 2 as const),
      h: fc.array(fc.tuple(fc.string({ maxLength: 6 }), fc.oneof(fc.string({ maxLength: 6 }), bytes)), { minLength: 1, maxLength: 3 }),
      ts: fc.integer({ min: 0, max: 2 ** 45 }),
      p: fc.integer({ min: 0, max: 1023 }),
    },
    { requiredKeys: ['v'] },
  )
  .map((r) => r as WireRecord);

const events = (first: number) =>
  fc
    .array(
      fc.record({
        topic: fc.constantFrom('a', 'b', 'clicks'),
        sub: fc.constantFrom('', 'alice', 'bob'),
        rec: record,
        bytes: fc.integer({ min: 0, max: 2 ** 31 }),
        withBody: fc.boolean(),
      }),
      { minLength: 1, maxLength: 30 },
    )
    .chain((list) =>
      fc.constantFrom(
        list,
        list.map((e) => ({ ...e, withBody: true })),
      ),
    ) // all with bodies: no values column
    .map((list) =>
      list.map(({ withBody, ...e }, i) => {
        const ev: OutboxEvent = { id: first + i, p: -1, seq: -1, ...e };
        if (withBody) ev.body = recordBody(e.rec);
        return ev;
      }),
    );

describe('IndexedDB outbox chunks', () => {
  it('give back every field of every event after structured clone, with one topic or several, with bodies or without', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 2 ** 40 }).chain(events), (evs) => {
        const stored = structuredClone(encodeChunk(evs));
        expect(decodeChunk(stored)).toEqual(evs);
      }),
      { numRuns: 300 },
    );
  });

  it('keep each value once when every event has a body, and read it from the body', () => {
    const evs: OutboxEvent[] = [
      { id: 1, topic: 't', p: -1, seq: -1, sub: '', rec: { k: 'k'.repeat(200), v: new Uint8Array(300).fill(7), e: 1, ts: 5 }, bytes: 0 },
      { id: 2, topic: 't', p: -1, seq: -1, sub: '', rec: { v: new Uint8Array([1, 2, 3]), ts: 6 }, bytes: 0 },
      { id: 3, topic: 't', p: -1, seq: -1, sub: '', rec: { k: new Uint8Array([9]), v: null, ts: 7 }, bytes: 0 },
    ];
    for (const e of evs) e.body = recordBody(e.rec);
    const chunk = encodeChunk(evs);
    expect('vals' in chunk).toBe(false);
    const back = decodeChunk(structuredClone(chunk));
    expect(back).toEqual(evs);
    // The value is a view of the body, not a copy.
    expect(back[0].rec.v!.buffer).toBe(back[0].body!.buffer);
  });

  it('read the CBOR chunks of versions 1 and 2', () => {
    const evs = [
      { id: 5, topic: 't', p: -1, seq: -1, sub: '', rec: { k: 'k1', v: new Uint8Array([1, 2]), e: 1 as const, ts: 7 }, bytes: 40 },
      { id: 6, topic: 't', seq: 3, sub: 'x', rec: { v: null, ts: 8 }, bytes: 32 },
    ];
    // cbor-x hands byte strings back as Buffers in Node: compare the bytes.
    const plain = (x: unknown): unknown =>
      x instanceof Uint8Array ? [...x] : Array.isArray(x) ? x.map(plain) : x && typeof x === 'object' ? Object.fromEntries(Object.entries(x).map(([k, v]) => [k, plain(v)])) : x;
    expect(plain(decodeChunk({ first: 5, data: encodeCbor(evs) }))).toEqual(plain(evs));
  });
});
