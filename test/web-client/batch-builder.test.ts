/**
 * BatchBuilder writes a batch event by event into its final bytes: they must
 * be exactly the bytes the reference path (toOutboxRecord → encodeWireBatch
 * → protocol's encodeBatch) writes for the same events, and it must refuse
 * what send() refuses, with the same codes. Pure: no hub.
 */
import { describe, expect, it } from 'vitest';
import { checkBatch, crc32c, decodeBatch, LIMITS } from '../../protocol/index.ts';
import { BatchBuilder } from '../../web-client/batch-builder.ts';
import { encodeOutboxBatch, encodeWireBatch, recordBody, toOutboxRecord, type SendEvent } from '../../web-client/event-input.ts';

const NOW = 1_700_000_000_000;

function reference(pid: string, seq: number, events: SendEvent[]): Uint8Array {
  return encodeWireBatch(
    pid,
    seq,
    events.map((e) => toOutboxRecord('t', e, NOW).rec),
    crc32c,
  );
}

function built(pid: string, seq: number, events: SendEvent[]): Uint8Array {
  const b = new BatchBuilder(pid);
  for (const e of events) b.addEvent(e, NOW);
  return b.seal(seq, crc32c);
}

/** Index of the first byte where a and b differ (-1 when equal): a readable failure without diffing 100 kB arrays. */
function firstDifference(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < Math.max(a.length, b.length); i++) if (a[i] !== b[i]) return i;
  return -1;
}

describe('BatchBuilder', () => {
  it('writes the same bytes as encodeBatch for keys, values, encodings, headers and timestamps of every kind', () => {
    const events: SendEvent[] = [
      { key: 'k1', value: { n: 1, s: 'x'.repeat(200) }, timestamp: NOW + 5 },
      { key: null, value: null },
      { value: 'plain' },
      { key: new Uint8Array([1, 2, 3]), value: new Uint8Array([9, 8]), timestamp: NOW - 1_000_000 },
      { key: 'ключ-€-😀', value: { text: 'naïve – “quotes” 😀' }, headers: { h: 'v', bin: new Uint8Array([0, 255]) } },
      { key: 'k'.repeat(300), value: [1, 2, 3], headers: [['a', 'ü']], timestamp: NOW + 2 ** 40 },
      { key: 'c', value: { cbor: true }, encoding: 'cbor' },
      { key: 'j', value: 42, encoding: 'json' },
      { key: 'u', value: undefined },
    ];
    const a = built('task.p.0', 7, events);
    expect(firstDifference(a, reference('task.p.0', 7, events))).toBe(-1);
    expect(checkBatch(a, 0, a.length, crc32c)).toBeNull();
    const recs = decodeBatch(a);
    expect(recs.map((r) => r.sequence)).toEqual(events.map((_, i) => 7 + i));
    // addEncoded writes a value's stored bytes as they are: the same batch as encoding the values.
    const again = new BatchBuilder('task.p.0');
    for (const r of recs) again.addEncoded(r.key, r.value, r.encoding, r.timestamp, r.headers);
    expect(firstDifference(again.seal(7, crc32c), a)).toBe(-1);
  });

  it('matches across many records (varint widths of deltas and lengths) and starts empty again after seal', () => {
    const events: SendEvent[] = Array.from({ length: 3_000 }, (_, i) => ({ key: `key-${i % 13}`, value: { i, pad: 'p'.repeat(i % 300) }, timestamp: NOW + i * 37 }));
    const b = new BatchBuilder('pid');
    for (const e of events.slice(0, 10)) b.addEvent(e, NOW);
    b.seal(0, crc32c);
    expect(b.count).toBe(0);
    for (const e of events) b.addEvent(e, NOW);
    expect(firstDifference(b.seal(100, crc32c), reference('pid', 100, events))).toBe(-1);
  });

  it('refuses what send() refuses, with the same codes, and leaves the batch as it was', () => {
    const b = new BatchBuilder('pid');
    b.addEvent({ key: 'ok', value: 1 }, NOW);
    const bads: Array<[SendEvent, string]> = [
      [{ key: 'x'.repeat(LIMITS.maxKeyBytes + 1), value: 1 }, 'RECORD_TOO_LARGE'],
      [{ value: 'v'.repeat(LIMITS.maxValueBytes) }, 'RECORD_TOO_LARGE'],
      [{ value: 1, timestamp: -1 }, 'BAD_RECORD'],
      [{ value: 1, timestamp: 1.5 }, 'BAD_RECORD'],
      [{ key: 5 as unknown as string, value: 1 }, 'BAD_RECORD'],
      [{ value: 1, headers: [['h', 5 as unknown as string]] }, 'BAD_RECORD'],
      [{ value: BigInt(1) }, 'BAD_RECORD'],
      [{ value: 1, headers: Object.fromEntries(Array.from({ length: LIMITS.maxHeaders + 1 }, (_, i) => [`h${i}`, 'v'])) }, 'BAD_RECORD'],
      [{} as SendEvent, 'BAD_RECORD'],
    ];
    for (const [e, code] of bads) {
      expect(() => toOutboxRecord('t', e, NOW)).toThrow(expect.objectContaining({ code }));
      expect(() => b.addEvent(e, NOW)).toThrow(expect.objectContaining({ code }));
    }
    expect(b.count).toBe(1);
    expect(firstDifference(b.seal(0, crc32c), reference('pid', 0, [{ key: 'ok', value: 1 }]))).toBe(-1);
  });

  it("send()'s record bodies, JSON encoded once into the slab, are recordBody's bytes: ASCII, UTF-8 of 2-4 bytes, across varint widths, past the slab", () => {
    const events: SendEvent[] = [
      { key: 'k', value: { s: 'x' } },
      // JSON texts of 127 and 128 chars: the value's length prefix grows a byte.
      { key: 'k', value: 'x'.repeat(125) },
      { key: 'k', value: 'x'.repeat(126) },
      // 50 chars, 150 bytes: the prefix sized for ASCII is too short and the text moves.
      { key: null, value: '€'.repeat(48) },
      { key: 'ключ', value: { t: 'naïve 😀 \ud800 end' }, headers: { h: 'v', bin: new Uint8Array([0, 255]) } },
      { key: new Uint8Array([1, 2]), value: ['ü'.repeat(300)], headers: [['a', 'b']] },
      // Longer than a slab shares: the path that measures first.
      { key: 'big', value: { pad: 'p'.repeat(5_000), e: '😀'.repeat(700) } },
    ];
    const withBodies = events.map((e) => toOutboxRecord('t', e, NOW, true));
    for (let i = 0; i < events.length; i++) {
      const { rec, body } = withBodies[i];
      const plain = toOutboxRecord('t', events[i], NOW).rec;
      expect(firstDifference(body!, recordBody(plain)), `event ${i}`).toBe(-1);
      expect(firstDifference(rec.v!, plain.v!), `event ${i}`).toBe(-1);
    }
    const fromBodies = encodeOutboxBatch('pid', 3, withBodies as Array<{ rec: (typeof withBodies)[number]['rec']; body?: Uint8Array }>, crc32c);
    // The same records as the reference path (the headers differ in appendTime only, which the hub stamps).
    expect(checkBatch(fromBodies, 0, fromBodies.length, crc32c)).toBeNull();
    expect(decodeBatch(fromBodies)).toEqual(decodeBatch(reference('pid', 3, events)));
  });

  it('addJson encodes a text once into the batch: the bytes of its UTF-8 whatever it holds, prefixes fixed up when not ASCII', () => {
    const texts: Array<[string | Uint8Array | null, string]> = [
      ['k', '{"s":"x"}'], // short: the ASCII loop
      ['k', JSON.stringify({ user: 'user-1', page: '/products/7', amount: 70 })], // one encodeInto
      // 127 and 128 bytes of value: its length prefix grows a byte.
      ['k', `"${'x'.repeat(125)}"`],
      ['k', `"${'x'.repeat(126)}"`],
      // 50 chars, 150 bytes: the value's prefix sized for ASCII is too short, and so is the record's: both move.
      [null, `"${'€'.repeat(48)}"`],
      // 2-4 byte UTF-8 and lone surrogates (TextEncoder writes U+FFFD for them, as utf8() does).
      ['ключ-€', '{"t":"naïve – “quotes” 😀 \\ud800 end","raw":"\ud800 \udc00x \ud83d"}'],
      [new Uint8Array([1, 2]), `["${'ü'.repeat(300)}"]`],
      // Record length crossing 16383 bytes after the fix-up (a 3-byte prefix from a 2-byte guess).
      ['k', `"${'€'.repeat(6_000)}"`],
      // Longer than the one-pass bound: measured first.
      ['big', `{"pad":"${'p'.repeat(20_000)}","e":"${'😀'.repeat(700)}"}`],
      ['after', '{"still":"in its place","n":12345678901}'],
    ];
    const headers: Array<[string, string | Uint8Array]> = [
      ['h', 'v'],
      ['bin', new Uint8Array([0, 255])],
    ];
    const b = new BatchBuilder('pid');
    texts.forEach(([k, t], i) => b.addJson(k, t, NOW + i, i % 2 ? headers : []));
    const got = b.seal(5, crc32c);
    const utf8 = new TextEncoder();
    const recs = texts.map(([k, t], i) => ({ k, v: utf8.encode(t), e: 1 as const, h: i % 2 ? headers : [], ts: NOW + i }));
    expect(firstDifference(got, encodeWireBatch('pid', 5, recs, crc32c))).toBe(-1);
    expect(checkBatch(got, 0, got.length, crc32c)).toBeNull();
  });
});
