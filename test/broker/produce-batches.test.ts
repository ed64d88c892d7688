/**
 * Produce in batch form against a real hub: the producer encodes record
 * batches itself (protocol/batch.ts) and the hub stores them as they are,
 * after checking each one whole. Retries get their original offsets.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { encodeBatch, stampBatch, type EncodedRecord } from '../../protocol/index.ts';
import type { AckFrame } from '../../protocol/frames.ts';
import { useHub } from '../../harness/hub-fixture.ts';
import { bytes, WsClient } from '../helpers/ws-client.ts';

const hub = useHub();
let c: WsClient;

const recs = (from: number, n: number, key = 'k'): EncodedRecord[] =>
  Array.from({ length: n }, (_, i) => ({ key: `${key}${from + i}`, value: bytes(`v${from + i}`), encoding: 'bytes', headers: [['h', 'x']], timestamp: 1_700_000_000_000 + from + i }));

function batch(producerId: string, baseSequence: number, records: EncodedRecord[]): Uint8Array {
  return encodeBatch({ producerId, baseSequence, records });
}

async function createTopic(name: string, partitions: number): Promise<void> {
  const res = await fetch(`${hub.url}/v1/topics`, { method: 'POST', body: JSON.stringify({ name, partitions }) });
  expect(res.status).toBe(201);
}

async function readAll(topic: string, p: number): Promise<Array<{ offset: number; key: string; value: unknown }>> {
  const res = await fetch(`${hub.url}/v1/topics/${topic}/partitions/${p}/records?offset=0&limit=1000`);
  return ((await res.json()) as { records: Array<{ offset: number; key: string; value: unknown }> }).records;
}

const produceBatches = (topic: string, batches: Array<{ p: number; b: Uint8Array }>) => c.request<AckFrame>({ t: 'produce', topic, batches });

beforeAll(async () => {
  c = hub.own(await WsClient.connect(hub.wsUrl));
});

describe('produce in batch form', () => {
  it('stores producer-encoded batches as they are, one ack part per batch', async () => {
    await createTopic('pb-store', 2);
    const ack = await produceBatches('pb-store', [
      { p: 1, b: batch('p1', 0, recs(0, 3)) },
      { p: 0, b: batch('p1', 3, recs(3, 2)) },
    ]);
    expect(ack.parts).toEqual([
      { p: 1, o: 0 },
      { p: 0, o: 0 },
    ]);
    expect(ack.dup).toBeUndefined();
    const p1 = await readAll('pb-store', 1);
    expect(p1.map((r) => [r.offset, r.key])).toEqual([
      [0, 'k0'],
      [1, 'k1'],
      [2, 'k2'],
    ]);
    expect(p1[0]).toMatchObject({ value: { $base64: Buffer.from('v0').toString('base64') }, headers: [['h', 'x']], timestamp: 1_700_000_000_000 });
    expect((await readAll('pb-store', 0)).map((r) => r.key)).toEqual(['k3', 'k4']);
  });

  it('answers a retry with the original offsets and appends nothing', async () => {
    await createTopic('pb-retry', 1);
    await produceBatches('pb-retry', [{ p: 0, b: batch('p2', 0, recs(0, 5)) }]);
    await produceBatches('pb-retry', [{ p: 0, b: batch('p2', 5, recs(5, 5)) }]);
    const again = await produceBatches('pb-retry', [{ p: 0, b: batch('p2', 0, recs(0, 5)) }]);
    expect(again).toMatchObject({ parts: [{ p: 0, o: 0 }], dup: true });
    expect((await readAll('pb-retry', 0)).length).toBe(10);
  });

  it('splits a retry that overlaps what was appended: old offsets for the old part, the rest appended once', async () => {
    await createTopic('pb-overlap', 1);
    await produceBatches('pb-overlap', [{ p: 0, b: batch('p3', 0, recs(0, 4)) }]);
    const ack = await produceBatches('pb-overlap', [{ p: 0, b: batch('p3', 2, recs(2, 4)) }]);
    expect(ack.parts[0]).toMatchObject({ p: 0, o: 2 });
    expect((await readAll('pb-overlap', 0)).map((r) => r.key)).toEqual(['k0', 'k1', 'k2', 'k3', 'k4', 'k5']);
  });

  it('accepts batches without a producer id (no idempotence)', async () => {
    await createTopic('pb-plain', 1);
    await produceBatches('pb-plain', [{ p: 0, b: encodeBatch({ records: recs(0, 2) }) }]);
    await produceBatches('pb-plain', [{ p: 0, b: encodeBatch({ records: recs(0, 2) }) }]);
    expect((await readAll('pb-plain', 0)).length).toBe(4);
  });

  it('refuses damaged, malformed and misaddressed batches with typed errors, appends nothing, and keeps the connection', async () => {
    await createTopic('pb-bad', 2);
    const flipped = batch('p4', 0, recs(0, 3));
    flipped[flipped.length - 5] ^= 0x10;
    await expect(produceBatches('pb-bad', [{ p: 0, b: flipped }])).rejects.toMatchObject({ code: 'CORRUPT_BATCH' });

    const badRecords = batch('p4', 0, recs(0, 1));
    badRecords[64 + 2 + 1] = 0xff; // the record's attributes (after the header, "p4" and the record length); re-stamp so the CRC is right
    stampBatch(badRecords, 0, 0, -1);
    await expect(produceBatches('pb-bad', [{ p: 0, b: badRecords }])).rejects.toMatchObject({ code: 'BAD_BATCH' });

    const truncated = batch('p4', 0, recs(0, 3)).subarray(0, 80);
    await expect(produceBatches('pb-bad', [{ p: 0, b: truncated }])).rejects.toMatchObject({ code: 'BAD_BATCH' });

    await expect(produceBatches('pb-bad', [{ p: 7, b: batch('p4', 0, recs(0, 1)) }])).rejects.toMatchObject({ code: 'BAD_PARTITION' });
    await expect(c.request({ t: 'produce', topic: 'pb-bad', batches: [{ p: 0, b: batch('p4', 0, recs(0, 1)) }], records: [{ v: null }] })).rejects.toMatchObject({ code: 'BAD_FRAME' });
    await expect(c.request({ t: 'produce', topic: 'pb-bad', batches: [] })).rejects.toMatchObject({ code: 'BAD_BATCH' });
    const future = encodeBatch({ records: [{ key: null, value: null, encoding: 'bytes', headers: [], timestamp: Date.now() + 10 * 3600_000 }] });
    await expect(produceBatches('pb-bad', [{ p: 0, b: future }])).rejects.toMatchObject({ code: 'TIMESTAMP_IN_FUTURE' });

    expect((await readAll('pb-bad', 0)).length).toBe(0);
    expect((await readAll('pb-bad', 1)).length).toBe(0);
    const ok = await produceBatches('pb-bad', [{ p: 1, b: batch('p4', 0, recs(0, 1)) }]);
    expect(ok.parts).toEqual([{ p: 1, o: 0 }]);
  });

  it('delivers producer-encoded batches to subscribers byte for byte', async () => {
    await createTopic('pb-sub', 1);
    await produceBatches('pb-sub', [{ p: 0, b: batch('p5', 0, recs(0, 2)) }]);
    const sent = batch('p5', 2, recs(2, 3));
    const sub = await c.subscribe('pb-sub', { from: 'earliest' });
    await produceBatches('pb-sub', [{ p: 0, b: sent }]);
    const got = await c.waitForRecords(sub.sub, 5);
    expect(got.map((r) => r.key)).toEqual(['k0', 'k1', 'k2', 'k3', 'k4']);
    // The second batch as delivered: the producer's bytes but for the base offset (0-7), the
    // CRC (13-16) and the append time (43-50) that the hub stamps.
    const delivered = Buffer.concat(c.frames(sub.sub).map((f) => f.b));
    const second = delivered.subarray(delivered.length - sent.length);
    const masked = (b: Uint8Array) => Buffer.from(b).fill(0, 0, 8).fill(0, 13, 17).fill(0, 43, 51);
    expect(second.readBigInt64BE(0)).toBe(2n);
    expect(masked(second).equals(masked(sent))).toBe(true);
  });
});
