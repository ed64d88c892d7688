import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  decodeClientFrame,
  encodeCbor,
  TributaryError,
  LIMITS,
  ackOffsets,
  ERRORS,
  httpStatusOf,
  closeCodeOf,
  isValidTopicName,
  recordFromJson,
  recordToJson,
  parseWireRecord,
  encodeBatch,
  decodeBatch,
  stampBatch,
  encodeRecordsFrame,
  decodeServerFrame,
} from '../../protocol/index.ts';

const produce = (extra: Record<string, unknown> = {}) => ({ t: 'produce', id: 1, topic: 'orders', records: [{ k: 'a', v: new Uint8Array([1]) }], ...extra });

describe('client frame decoder', () => {
  it('decodes a valid produce frame into the record model', () => {
    const r = decodeClientFrame(encodeCbor(produce({ pid: 'p1', seq: 5 })), LIMITS.maxFrameBytes, 1234);
    expect(r.ok).toBe(true);
    if (!r.ok || r.frame.t !== 'produce' || r.frame.batches) throw new Error('expected produce with records');
    expect(r.frame.pid).toBe('p1');
    expect(r.frame.seq).toBe(5);
    expect(r.frame.records[0]).toMatchObject({ key: 'a', encoding: 'bytes', timestamp: 1234, headers: [] });
  });

  it('never throws on random bytes and always returns a typed error or a frame', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 512 }), (bytes) => {
        const r = decodeClientFrame(bytes);
        if (!r.ok) expect(r.error).toBeInstanceOf(TributaryError);
      }),
      { numRuns: 2000 },
    );
  });

  it('never throws on random CBOR values', () => {
    const anyValue = fc.anything({ maxDepth: 3, withTypedArray: true, withNullPrototype: false });
    fc.assert(
      fc.property(
        fc.record({ t: fc.constantFrom('hello', 'auth', 'produce', 'subscribe', 'credit', 'unsubscribe', 'commit', 'metadata', 'ping', 'x'), id: fc.oneof(fc.nat(), anyValue) }, { requiredKeys: [] }),
        fc.dictionary(fc.string({ maxLength: 10 }), anyValue, { maxKeys: 6 }),
        (base, extra) => {
          let bytes: Uint8Array;
          try {
            bytes = encodeCbor({ ...extra, ...base });
          } catch {
            return; // value not representable in CBOR
          }
          const r = decodeClientFrame(bytes);
          if (!r.ok) expect(r.error).toBeInstanceOf(TributaryError);
        },
      ),
      { numRuns: 2000 },
    );
  });

  it('rejects truncated frames', () => {
    const bytes = encodeCbor(produce());
    for (let cut = 0; cut < bytes.length; cut++) {
      const r = decodeClientFrame(bytes.subarray(0, cut));
      expect(r.ok).toBe(false);
    }
  });

  it('rejects an oversized frame before parsing it', () => {
    const r = decodeClientFrame(new Uint8Array(LIMITS.maxFrameBytes + 1));
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error.code).toBe('FRAME_TOO_LARGE');
  });

  it.each([
    ['bad topic', produce({ topic: '..' }), 'BAD_TOPIC_NAME'],
    ['topic too long', produce({ topic: 'a'.repeat(250) }), 'BAD_TOPIC_NAME'],
    ['no records', produce({ records: [] }), 'BAD_RECORD'],
    ['too many records', produce({ records: Array.from({ length: LIMITS.maxRecordsPerBatch + 1 }, () => ({ v: null })) }), 'BATCH_TOO_LARGE'],
    ['value not bytes', produce({ records: [{ v: 'text' }] }), 'BAD_RECORD'],
    ['huge key', produce({ records: [{ k: 'k'.repeat(LIMITS.maxKeyBytes + 1), v: null }] }), 'RECORD_TOO_LARGE'],
    ['too many headers', produce({ records: [{ v: null, h: Array.from({ length: LIMITS.maxHeaders + 1 }, () => ['a', 'b']) }] }), 'BAD_RECORD'],
    ['bad header', produce({ records: [{ v: null, h: [['a', 5]] }] }), 'BAD_RECORD'],
    ['seq without pid', produce({ seq: 1 }), 'BAD_SEQUENCE'],
    ['pid without seq', produce({ pid: 'x' }), 'BAD_SEQUENCE'],
    ['negative seq', produce({ pid: 'x', seq: -1 }), 'BAD_SEQUENCE'],
    ['bad partition', produce({ records: [{ v: null, p: -1 }] }), 'BAD_PARTITION'],
    ['unknown type', { t: 'nope', id: 1 }, 'BAD_FRAME'],
    ['bad subscribe from', { t: 'subscribe', id: 1, topic: 't', from: 'yesterday' }, 'BAD_FRAME'],
  ])('rejects %s with a typed error that keeps the request id', (_name, frame, code) => {
    const r = decodeClientFrame(encodeCbor(frame));
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.error.code).toBe(code);
      expect(r.id).toBe(1);
    }
  });

  it('rejects frames without an id, except credit', () => {
    expect(decodeClientFrame(encodeCbor({ t: 'ping' })).ok).toBe(false);
    expect(decodeClientFrame(encodeCbor({ t: 'credit', sub: 1, bytes: 100 })).ok).toBe(true);
    expect(decodeClientFrame(encodeCbor([1, 2])).ok).toBe(false);
  });

  it('decodes subscribe positions and start positions', () => {
    const r = decodeClientFrame(encodeCbor({ t: 'subscribe', id: 2, topic: 't', from: { timestamp: 5 }, partitions: [0, 1, 1], positions: { '0': 10 }, credit: 1000 }));
    expect(r.ok && r.frame).toMatchObject({ t: 'subscribe', from: { timestamp: 5 }, partitions: [0, 1], positions: { '0': 10 }, credit: 1000 });
  });
});

describe('acks', () => {
  it('maps compact per-partition parts back to request order', () => {
    const parts = [
      { p: 1, o: 50, r: [0, 2] },
      { p: 0, o: 10, r: [1] },
      { p: 2, o: 0, r: [3], offs: [7] },
    ];
    expect(ackOffsets({ parts }, 4)).toEqual([
      { partition: 1, offset: 50 },
      { partition: 0, offset: 10 },
      { partition: 1, offset: 51 },
      { partition: 2, offset: 7 },
    ]);
    expect(ackOffsets({ parts: [{ p: 3, o: 100 }] }, 2)).toEqual([
      { partition: 3, offset: 100 },
      { partition: 3, offset: 101 },
    ]);
  });
});

describe('errors', () => {
  it('maps every code to an HTTP status and a WebSocket close code', () => {
    for (const code of Object.keys(ERRORS) as Array<keyof typeof ERRORS>) {
      const status = httpStatusOf(code);
      expect(status).toBeGreaterThanOrEqual(400);
      expect(closeCodeOf(code)).toBe(4000 + status);
    }
    expect(closeCodeOf('TOKEN_EXPIRED')).toBe(4401);
    expect(closeCodeOf('AUTH_TIMEOUT')).toBe(4408);
    expect(new TributaryError('RATE_LIMITED').toJSON()).toEqual({ error: { code: 'RATE_LIMITED', message: 'rate limit exceeded', retriable: true } });
  });
});

describe('topic names', () => {
  it('follow Kafka: [a-zA-Z0-9._-]{1,249}, not . or ..', () => {
    for (const ok of ['a', 'orders', 'sensors.kitchen', 'A_b-c.9', 'x'.repeat(249)]) expect(isValidTopicName(ok)).toBe(true);
    for (const bad of ['', '.', '..', 'a/b', 'a b', 'x'.repeat(250), 'ü', null, 5]) expect(isValidTopicName(bad)).toBe(false);
  });
});

describe('JSON record model', () => {
  it('shows json values as JSON, bytes as $base64, and round-trips through a batch', () => {
    const now = 1_700_000_000_000;
    const inputs = [
      {
        key: 'k',
        value: { temperature: 21.5 },
        headers: [
          ['device-id', 'd1'],
          ['raw', { $base64: 'AAE=' }],
        ],
      },
      { key: { $base64: 'AQI=' }, value: { $base64: 'aGVsbG8=' } },
      { value: null },
    ];
    const records = inputs.map((r, i) => parseWireRecord(recordFromJson(r, i, now), i, now));
    const batch = encodeBatch({ records });
    stampBatch(batch, 0, 0, now);
    const out = decodeBatch(batch).map(recordToJson);
    expect(out[0]).toEqual({
      offset: 0,
      timestamp: now,
      key: 'k',
      value: { temperature: 21.5 },
      headers: [
        ['device-id', 'd1'],
        ['raw', { $base64: 'AAE=' }],
      ],
    });
    expect(out[1]).toMatchObject({ key: { $base64: 'AQI=' }, value: { $base64: 'aGVsbG8=' } });
    expect(out[2].value).toBeNull();
  });

  it('refuses records without a value or with bad base64', () => {
    expect(() => recordFromJson({ key: 'a' }, 0, 0)).toThrow(TributaryError);
    expect(() => recordFromJson({ value: { $base64: '%%%' } }, 0, 0)).toThrow(TributaryError);
  });
});

describe('produce frames in batch form', () => {
  const recs = [{ key: 'a', value: new Uint8Array([1]), encoding: 'bytes' as const, headers: [], timestamp: 5 }];
  it('checks each batch whole and exposes its producer header', () => {
    const b = encodeBatch({ producerId: 'dev-1', baseSequence: 40, records: [...recs, ...recs].map((r, i) => ({ ...r, sequenceDelta: i * 2 })) });
    const r = decodeClientFrame(encodeCbor({ t: 'produce', id: 3, topic: 't', batches: [{ p: 2, b }] }));
    expect(r.ok && r.frame).toMatchObject({ t: 'produce', batches: [{ partition: 2, recordCount: 2, producerId: 'dev-1', baseSequence: 40, lastSequence: 42, maxTimestamp: 5 }] });
  });
  it.each([
    [
      'a flipped bit',
      (b: Uint8Array) => {
        b[b.length - 1] ^= 1;
        return b;
      },
      'CORRUPT_BATCH',
    ],
    ['a length that lies', (b: Uint8Array) => b.subarray(0, b.length - 1), 'BAD_BATCH'],
    ['trailing bytes', (b: Uint8Array) => Uint8Array.from([...b, 0]), 'BAD_BATCH'],
  ])('refuses a batch with %s', (_n, damage, code) => {
    const b = damage(encodeBatch({ producerId: 'p', baseSequence: 0, records: recs }));
    const r = decodeClientFrame(encodeCbor({ t: 'produce', id: 4, topic: 't', batches: [{ p: 0, b }] }));
    expect(!r.ok && r.error.code).toBe(code);
  });
  it('refuses a producer id without sequences, offset gaps, and too many batches', () => {
    const noSeq = encodeBatch({ producerId: 'p', records: recs });
    expect(!decodeClientFrame(encodeCbor({ t: 'produce', id: 1, topic: 't', batches: [{ p: 0, b: noSeq }] })).ok).toBe(true);
    const gaps = encodeBatch({ records: [...recs, ...recs].map((r, i) => ({ ...r, offsetDelta: i * 2 })) });
    const g = decodeClientFrame(encodeCbor({ t: 'produce', id: 1, topic: 't', batches: [{ p: 0, b: gaps }] }));
    expect(!g.ok && g.error.code).toBe('BAD_BATCH');
    const one = encodeBatch({ records: recs });
    const many = decodeClientFrame(encodeCbor({ t: 'produce', id: 1, topic: 't', batches: Array.from({ length: 65 }, () => ({ p: 0, b: one })) }));
    expect(!many.ok && many.error.code).toBe('BATCH_TOO_LARGE');
  });
});

describe('a records frame from several buffers (encodeRecordsFrame)', () => {
  it('is byte for byte the frame encodeCbor makes of the joined bytes, across every byte-string length header', () => {
    for (const size of [0, 1, 23, 24, 255, 256, 65_535, 65_536, 300_001]) {
      const joined = Uint8Array.from({ length: size }, (_, i) => (i * 31 + size) & 0xff);
      // Cut into uneven parts (and an empty one) as a JetStream read hands them over.
      const cuts = [0, Math.floor(size / 3), Math.floor(size / 3), Math.floor((size * 3) / 4), size];
      const parts = cuts.slice(1).map((end, i) => joined.subarray(cuts[i], end));
      const frame = encodeRecordsFrame(7, 'orders', 3, parts, size, 123_456);
      expect(Buffer.from(frame).equals(Buffer.from(encodeCbor({ t: 'records', sub: 7, topic: 'orders', p: 3, hw: 123_456, b: joined })))).toBe(true);
      const back = decodeServerFrame(frame) as { ok: boolean; frame?: { b: Uint8Array } };
      expect(back.ok).toBe(true);
      expect(Buffer.from(back.frame!.b).equals(Buffer.from(joined))).toBe(true);
    }
  });
});
