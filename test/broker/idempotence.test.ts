/**
 * Idempotent producers against a real hub: a retry gets the original
 * offsets and appends nothing, also when the original landed on only some
 * of the partitions it spans, and also across a hub restart.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ackOffsets, type AckFrame, type WireRecord } from '../../protocol/frames.ts';
import { encodeBatch } from '../../protocol/batch.ts';
import { startHub, type Hub } from '../../harness/hub.ts';
import { bytes, text, WsClient } from '../helpers/ws-client.ts';

let hub: Hub;
const clients: WsClient[] = [];

async function client(h: Hub = hub): Promise<WsClient> {
  const c = await WsClient.connect(h.wsUrl);
  clients.push(c);
  return c;
}

async function createTopic(name: string, partitions: number): Promise<void> {
  const res = await fetch(`${hub.url}/v1/topics`, { method: 'POST', body: JSON.stringify({ name, partitions }) });
  expect(res.status).toBe(201);
}

async function logEnds(topic: string): Promise<number[]> {
  const d = (await (await fetch(`${hub.url}/v1/topics/${topic}`)).json()) as { offsets: Array<{ logEnd: number }> };
  return d.offsets.map((o) => o.logEnd);
}

beforeAll(async () => {
  hub = await startHub();
});

afterAll(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await hub.stop();
  hub.cleanup();
});

describe('idempotent produce', () => {
  it('a retried request gets its original offsets and appends nothing', async () => {
    await createTopic('idem', 3);
    const c = await client();
    const records: WireRecord[] = Array.from({ length: 12 }, (_, i) => ({ k: `k${i}`, v: bytes(`v${i}`) }));
    const first = await c.produce('idem', records, { pid: 'prod-1', seq: 0 });
    expect(first.dup).toBeUndefined();
    const before = await logEnds('idem');
    const retry = await c.produce('idem', records, { pid: 'prod-1', seq: 0 });
    expect(retry.dup).toBe(true);
    expect(ackOffsets(retry, 12)).toEqual(ackOffsets(first, 12));
    expect(await logEnds('idem')).toEqual(before);
    // The next request continues the sequence and is appended.
    const next = await c.produce('idem', [{ k: 'k0', v: bytes('later') }], { pid: 'prod-1', seq: 12 });
    expect(next.dup).toBeUndefined();
  });

  it('a retry spanning partitions where only some were appended appends the rest once', async () => {
    await createTopic('span', 2);
    const c = await client();
    const all: WireRecord[] = [
      { v: bytes('a'), p: 0 },
      { v: bytes('b'), p: 0 },
      { v: bytes('c'), p: 1 },
      { v: bytes('d'), p: 1 },
    ];
    // As if the hub crashed after appending partition 0's part of the request: append exactly that part first.
    const partial = await c.produce('span', all.slice(0, 2), { pid: 'prod-2', seq: 0 });
    expect(partial.parts).toEqual([{ p: 0, o: 0 }]);
    const full = await c.produce('span', all, { pid: 'prod-2', seq: 0 });
    expect(full.dup).toBeUndefined(); // partition 1's records were appended now
    expect(ackOffsets(full, 4)).toEqual([
      { partition: 0, offset: 0 },
      { partition: 0, offset: 1 },
      { partition: 1, offset: 0 },
      { partition: 1, offset: 1 },
    ]);
    expect(await logEnds('span')).toEqual([2, 2]);
    const again = await c.produce('span', all, { pid: 'prod-2', seq: 0 });
    expect(again.dup).toBe(true);
    expect(ackOffsets(again, 4)).toEqual(ackOffsets(full, 4));
    expect(await logEnds('span')).toEqual([2, 2]);
  });

  it('a retry sent while the original is still in flight is not appended twice', async () => {
    await createTopic('race', 1);
    const c = await client();
    const records: WireRecord[] = Array.from({ length: 50 }, (_, i) => ({ v: bytes(`r${i}`) }));
    const [a, b, d] = await Promise.all([
      c.produce('race', records, { pid: 'prod-3', seq: 0 }),
      c.produce('race', records, { pid: 'prod-3', seq: 0 }),
      c.produce('race', records, { pid: 'prod-3', seq: 0 }),
    ]);
    expect(ackOffsets(b, 50)).toEqual(ackOffsets(a, 50));
    expect(ackOffsets(d, 50)).toEqual(ackOffsets(a, 50));
    expect([a.dup, b.dup, d.dup].filter((x) => x === true)).toHaveLength(2);
    expect(await logEnds('race')).toEqual([50]);
  });

  it('pipelined idempotent requests of one producer are all appended, in order', async () => {
    await createTopic('pipe', 1);
    const c = await client();
    const acks = await Promise.all(Array.from({ length: 20 }, (_, i) => c.produce('pipe', [{ v: bytes(`p${i}`) }], { pid: 'prod-4', seq: i })));
    expect(acks.map((a) => a.parts[0].o)).toEqual(Array.from({ length: 20 }, (_, i) => i));
    expect(acks.every((a) => a.dup === undefined)).toBe(true);
  });

  it('a forward gap in the records form is refused as retriable SEQUENCE_GAP with nothing appended; the skipped request then lets it in', async () => {
    await createTopic('gap-records', 3);
    const c = await client();
    const recs = (from: number, n: number): WireRecord[] => Array.from({ length: n }, (_, i) => ({ k: `k${(from + i) % 5}`, v: bytes(`g${from + i}`) }));
    await c.produce('gap-records', recs(0, 12), { pid: 'gap-1', seq: 0 });
    const before = await logEnds('gap-records');
    const err = await c.produce('gap-records', recs(1000, 3), { pid: 'gap-1', seq: 1000 }).catch((e) => e);
    expect(err).toMatchObject({ code: 'SEQUENCE_GAP', retriable: true, details: { expected: 12 } });
    expect(await logEnds('gap-records')).toEqual(before);
    // The requests before it arrive (pipelined), then the one refused goes through: no gap, no reordering.
    const [a, b] = await Promise.all([c.produce('gap-records', recs(12, 988), { pid: 'gap-1', seq: 12 }), c.produce('gap-records', recs(1000, 3), { pid: 'gap-1', seq: 1000 })]);
    expect(a.dup).toBeUndefined();
    expect(b.dup).toBeUndefined();
    const ends = await logEnds('gap-records');
    expect(ends.reduce((x, y) => x + y, 0)).toBe(1003);
  });

  it('a forward gap in the batch form is refused per (producer, partition), checked for the whole frame before anything is appended', async () => {
    await createTopic('gap-batches', 2);
    const c = await client();
    const enc = (seq: number, n: number) =>
      encodeBatch({
        producerId: 'gap-2',
        baseSequence: seq,
        records: Array.from({ length: n }, (_, i) => ({ key: `b${seq + i}`, value: bytes(`b${seq + i}`), encoding: 'bytes' as const, headers: [], timestamp: Date.now() })),
      });
    const produceBatches = (batches: Array<{ p: number; b: Uint8Array }>) => c.request<AckFrame>({ t: 'produce', topic: 'gap-batches', batches });
    // Partition 0 and 1 are numbered on their own, densely.
    await produceBatches([
      { p: 0, b: enc(0, 5) },
      { p: 1, b: enc(0, 3) },
      { p: 0, b: enc(5, 5) },
    ]);
    const gap = await produceBatches([
      { p: 1, b: enc(3, 2) },
      { p: 0, b: enc(11, 2) },
    ]).catch((e) => e);
    expect(gap).toMatchObject({ code: 'SEQUENCE_GAP', retriable: true, details: { batch: 1, partition: 0, expected: 10 } });
    expect(await logEnds('gap-batches')).toEqual([10, 3]);
    const sparse = encodeBatch({
      producerId: 'gap-2',
      baseSequence: 10,
      records: [0, 2].map((d) => ({ key: 'x', value: bytes('x'), encoding: 'bytes' as const, headers: [], timestamp: Date.now(), sequenceDelta: d })),
    });
    await expect(produceBatches([{ p: 0, b: sparse }])).rejects.toMatchObject({ code: 'BAD_SEQUENCE' });
    await produceBatches([
      { p: 1, b: enc(3, 2) },
      { p: 0, b: enc(10, 1) },
      { p: 0, b: enc(11, 2) },
    ]);
    expect(await logEnds('gap-batches')).toEqual([13, 5]);
  });

  it('unkeyed records of an idempotent producer land where the original did on retry', async () => {
    await createTopic('unkeyed', 4);
    const c = await client();
    const records: WireRecord[] = Array.from({ length: 30 }, (_, i) => ({ v: bytes(`u${i}`) }));
    const first = await c.produce('unkeyed', records, { pid: 'prod-5', seq: 1000 });
    const retry = await c.produce('unkeyed', records, { pid: 'prod-5', seq: 1000 });
    expect(retry.dup).toBe(true);
    expect(ackOffsets(retry, 30)).toEqual(ackOffsets(first, 30));
  });

  it('HTTP produce with producerId/sequence answers a retry with duplicate: true', async () => {
    const body = JSON.stringify({
      producerId: 'http-1',
      sequence: 0,
      records: [
        { key: 'x', value: { n: 1 } },
        { key: 'y', value: { n: 2 } },
      ],
    });
    const post = () => fetch(`${hub.url}/v1/topics/http-idem/records`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    const r1 = await post();
    expect(r1.status).toBe(200);
    const a1 = (await r1.json()) as { offsets: unknown; duplicate?: boolean };
    const a2 = (await (await post()).json()) as { offsets: unknown; duplicate?: boolean };
    expect(a1.duplicate).toBeUndefined();
    expect(a2).toEqual({ offsets: a1.offsets, duplicate: true });
  });

  it('a retry after a hub restart still gets the original offsets', async () => {
    const dataDir = hub.dataDir;
    const c = await client();
    const records: WireRecord[] = [{ k: 'r', v: bytes('before restart') }];
    const first = await c.produce('restart', records, { pid: 'prod-6', seq: 0 });
    await c.close();
    await hub.stop();
    hub = await startHub({ dataDir });
    const c2 = await client();
    const retry = await c2.produce('restart', records, { pid: 'prod-6', seq: 0 });
    expect(retry.dup).toBe(true);
    expect(retry.parts).toEqual(first.parts);
    const s = await c2.subscribe('restart', { from: 'earliest' });
    const recs = await c2.waitForRecords(s.sub, 1);
    expect(recs.map((r) => text(r.value))).toEqual(['before restart']);
  });
});
