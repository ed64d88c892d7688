/**
 * The IndexedDB outbox's direct path (web-client/outbox-idb-direct.ts): the
 * chunk record it writes at the call is the one the usual path stores for
 * the same events (toOutboxRecord, then encodeChunk without bodies), after
 * structured clone; an invalid event of a sendMany leaves nothing in; a group
 * goes to its writer once, in call order, and events that may not fit the
 * bounds are left to the usual path.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { toOutboxRecord, type SendEvent } from '../../web-client/event-input.ts';
import { ChunkColumns, DirectGroups, type DirectGroup } from '../../web-client/outbox-idb-direct.ts';
import { decodeChunk, encodeChunk } from '../../web-client/outbox-idb-chunk.ts';
import type { OutboxEvent } from '../../web-client/outbox.ts';

const bytes = fc.uint8Array({ maxLength: 40 });
const sendEvent: fc.Arbitrary<SendEvent> = fc
  .record(
    {
      key: fc.oneof(fc.string({ unit: 'grapheme', maxLength: 12 }), bytes, fc.constant(null)),
      value: fc.oneof(
        bytes,
        fc.constant(null),
        fc.jsonValue({ maxDepth: 2 }).filter((v) => v !== null),
        fc.string({ unit: 'grapheme', maxLength: 20 }),
      ),
      headers: fc.array(fc.tuple(fc.string({ maxLength: 6 }), fc.oneof(fc.string({ maxLength: 6 }), bytes)), { maxLength: 3 }),
      timestamp: fc.integer({ min: 0, max: 2 ** 45 }),
      partition: fc.integer({ min: 0, max: 1023 }),
      encoding: fc.constant('cbor' as const),
    },
    { requiredKeys: ['value'] },
  )
  .filter((e) => !(e.encoding === 'cbor' && e.value instanceof Uint8Array))
  .map((e) => e as SendEvent);

const NOW = 1_700_000_000_000;
const BIG = { maxEvents: 1e9, maxBytes: 1e12 };

/** What the usual path stores for these events (ids from `first`). */
function usual(topic: string, sub: string, evs: SendEvent[], first: number): OutboxEvent[] {
  const out = evs.map((ev, i): OutboxEvent => {
    const { rec, bytes } = toOutboxRecord(topic, ev, NOW, true);
    return { id: first + i, topic, p: -1, seq: -1, sub, rec, bytes };
  });
  return decodeChunk(structuredClone(encodeChunk(out, false)));
}

describe('IndexedDB outbox direct path', () => {
  it('writes the chunk record the usual path stores for the same events', () => {
    fc.assert(
      fc.property(fc.array(sendEvent, { minLength: 1, maxLength: 40 }), fc.constantFrom('clicks', 'a.b-c'), fc.constantFrom('', 'alice'), (evs, topic, sub) => {
        const c = new ChunkColumns(1, 4);
        for (const ev of evs) c.write(topic, sub, ev, NOW, BIG.maxBytes);
        expect(decodeChunk(structuredClone(c.finish(77)))).toEqual(usual(topic, sub, evs, 77));
      }),
      { numRuns: 200 },
    );
  });

  it('an invalid event in a sendMany leaves the open group as it was; groups go to the writer once, in order', async () => {
    const written: DirectGroup[] = [];
    const groups = new DirectGroups(
      () => ({ events: 0, bytes: 0 }),
      async (g) => void written.push(g),
    );
    const ok = (i: number): SendEvent => ({ key: `k${i}`, value: { i } });
    const first = groups.sendMany('t', '', [ok(0), ok(1), ok(2)], NOW, BIG)!;
    expect(first.stored).toBe(3);
    expect(() => groups.sendMany('t', '', [ok(3), { key: 5 as unknown as string, value: 1 }], NOW, BIG)).toThrow(/key must be/);
    // 2,500 more: the group's second chunk starts past CHUNK_MAX_EVENTS.
    const many = groups.sendMany(
      't',
      '',
      Array.from({ length: 2_500 }, (_, i) => ok(3 + i)),
      NOW,
      BIG,
    )!;
    expect(many.done).toBe(first.done);
    await first.done;
    expect(written.length).toBe(1);
    const g = written[0];
    expect(g.count).toBe(2_503);
    const decoded = g.chunks.flatMap((c, at) => decodeChunk(c.finish(1 + at * 2_000)));
    expect(decoded.map((e) => (e.rec.k as string).slice(1)).join()).toBe(Array.from({ length: 2_503 }, (_, i) => i).join());
    expect(groups.pending).toEqual({ events: 0, bytes: 0 });
  });

  it('leaves to the usual path what may not fit the bounds, or anything before the counters are known', () => {
    let known: { events: number; bytes: number } | undefined;
    const groups = new DirectGroups(
      () => known,
      async () => undefined,
    );
    const bounds = { maxEvents: 10, maxBytes: 1e9 };
    expect(groups.sendOne('t', '', { value: 1 }, NOW, bounds)).toBeUndefined();
    known = { events: 8, bytes: 0 };
    expect(groups.sendOne('t', '', { value: 1 }, NOW, bounds)).toBeDefined();
    expect(groups.sendMany('t', '', [{ value: 1 }, { value: 2 }], NOW, bounds)).toBeUndefined();
    expect(groups.sendOne('t', '', { value: 1 }, NOW, bounds)).toBeDefined();
    expect(groups.sendOne('t', '', { value: 1 }, NOW, bounds)).toBeUndefined();
    expect(groups.pending.events).toBe(2);
    expect(groups.sendOne('t', '', { value: 1 }, NOW, { maxEvents: 100, maxBytes: groups.pending.bytes + 10 })).toBeUndefined();
  });
});
