/**
 * The edge worker in workerd, in front of a real hub on loopback: readings
 * land with device headers, retries do not duplicate, many devices arrive
 * complete and in order.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeCbor } from '../../protocol/codec.ts';
import { startHub, type Hub } from '../../harness/hub.ts';
import { buildWorker, countRecords, DEVICE_SECRET, deviceToken, headerOf, ingest, readPartition, readTopic, removeBundle, startEdge, type Edge, type ReadRecord } from '../../harness/edge.ts';

let hub: Hub;
let edge: Edge;
let bundle: string;

beforeAll(async () => {
  [hub, bundle] = await Promise.all([startHub(), buildWorker()]);
  edge = await startEdge(bundle, { HUB_URL: hub.url, DEVICE_JWT_SECRET: DEVICE_SECRET, ALLOWED_TOPICS: 'sensors.*' });
});

afterAll(async () => {
  await edge?.dispose();
  await hub?.stop();
  hub?.cleanup();
  if (bundle) removeBundle(bundle);
});

async function recordsAt(topic: string, offsets: Array<{ partition: number; offset: number }>): Promise<ReadRecord[]> {
  const partition = offsets[0].partition;
  const all = (await readPartition(hub.url, topic, partition)) ?? [];
  return offsets.map((o) => {
    expect(o.partition).toBe(partition);
    const r = all.find((x) => x.offset === o.offset);
    if (!r) throw new Error(`no record at ${topic}/${o.partition}@${o.offset}`);
    return r;
  });
}

describe('edge worker → hub', () => {
  it('a single JSON reading becomes one record keyed by the device, with device-id and received-at headers', async () => {
    const token = await deviceToken({ sub: 'thermo-1' });
    const before = Date.now();
    const res = await ingest(edge.url, 'sensors.single', { temperature: 21.5 }, { token });
    expect(res.status).toBe(200);
    expect(res.body.offsets).toHaveLength(1);
    const [r] = await recordsAt('sensors.single', res.body.offsets);
    expect(r.value).toEqual({ temperature: 21.5 });
    expect(r.key).toBe('thermo-1');
    expect(headerOf(r, 'device-id')).toBe('thermo-1');
    const receivedAt = Date.parse(String(headerOf(r, 'received-at')));
    expect(receivedAt).toBeGreaterThanOrEqual(before - 1000);
    expect(receivedAt).toBeLessThanOrEqual(Date.now() + 1000);
    expect(r.timestamp).toBe(receivedAt);
  });

  it('a JSON batch and a CBOR batch land in the order sent, on the device partition', async () => {
    const token = await deviceToken({ sub: 'thermo-2' });
    const json = await ingest(edge.url, 'sensors.batch', [{ n: 0 }, { n: 1 }, { n: 2 }], { token });
    expect(json.status).toBe(200);
    const cbor = await ingest(edge.url, 'sensors.batch', encodeCbor([{ n: 3, nested: { ok: true } }, { n: 4 }]), { token, contentType: 'application/cbor' });
    expect(cbor.status).toBe(200);
    const one = await ingest(edge.url, 'sensors.batch', encodeCbor({ n: 5 }), { token, contentType: 'application/cbor' });
    expect(one.status).toBe(200);
    const offsets = [...json.body.offsets, ...cbor.body.offsets, ...one.body.offsets];
    const records = await recordsAt('sensors.batch', offsets);
    expect(records.map((r) => r.value)).toEqual([{ n: 0 }, { n: 1 }, { n: 2 }, { n: 3, nested: { ok: true } }, { n: 4 }, { n: 5 }]);
    for (let i = 1; i < offsets.length; i++) expect(offsets[i].offset).toBeGreaterThan(offsets[i - 1].offset);
    expect(records.every((r) => headerOf(r, 'device-id') === 'thermo-2')).toBe(true);
  });

  it('a device retry with the same x-sequence answers the original offsets and appends nothing', async () => {
    const token = await deviceToken({ sub: 'thermo-3' });
    const batch = [{ t: 1 }, { t: 2 }];
    const first = await ingest(edge.url, 'sensors.retry', batch, { token, sequence: 0 });
    expect(first.status).toBe(200);
    expect(first.body.duplicate).toBeUndefined();
    const again = await ingest(edge.url, 'sensors.retry', batch, { token, sequence: 0 });
    expect(again.status).toBe(200);
    expect(again.body).toEqual({ offsets: first.body.offsets, duplicate: true });
    const next = await ingest(edge.url, 'sensors.retry', [{ t: 3 }], { token, sequence: 2 });
    expect(next.status).toBe(200);
    expect(await countRecords(hub.url, 'sensors.retry')).toBe(3);
  });

  it('a retry after the hub appended but the answer was lost does not duplicate', async () => {
    const token = await deviceToken({ sub: 'thermo-4' });
    // What the worker's first forward put on the hub before its answer was lost:
    // the same producer id and sequence, sent straight to the hub.
    const direct = await fetch(`${hub.url}/v1/topics/sensors.lost/records`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        records: [
          {
            key: 'thermo-4',
            value: { t: 1 },
            headers: [
              ['device-id', 'thermo-4'],
              ['received-at', new Date().toISOString()],
            ],
          },
        ],
        producerId: 'device:thermo-4',
        sequence: 7,
      }),
    });
    expect(direct.status).toBe(200);
    const original = (await direct.json()) as { offsets: unknown };
    const retry = await ingest(edge.url, 'sensors.lost', { t: 1 }, { token, sequence: 7 });
    expect(retry.status).toBe(200);
    expect(retry.body).toEqual({ offsets: original.offsets, duplicate: true });
    expect(await countRecords(hub.url, 'sensors.lost')).toBe(1);
  });

  it('a retry after the worker lost the hub answer (connection cut after the append) does not duplicate', async () => {
    // A proxy in front of the hub that forwards the request, waits until the hub
    // has answered (so the readings are appended), then cuts the connection
    // instead of passing the answer back.
    let cut = true;
    const proxy = http.createServer(async (req, res) => {
      const chunks: Buffer[] = [];
      for await (const c of req) chunks.push(c as Buffer);
      const upstream = await fetch(`${hub.url}${req.url}`, { method: req.method, headers: { 'content-type': String(req.headers['content-type']) }, body: Buffer.concat(chunks) });
      const body = Buffer.from(await upstream.arrayBuffer());
      if (cut) {
        req.socket.destroy();
        return;
      }
      res.writeHead(upstream.status, { 'content-type': upstream.headers.get('content-type') ?? 'application/json' }).end(body);
    });
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    const lossy = await startEdge(bundle, { HUB_URL: `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`, DEVICE_JWT_SECRET: DEVICE_SECRET, ALLOWED_TOPICS: 'sensors.*' });
    try {
      const token = await deviceToken({ sub: 'thermo-7' });
      const readings = [{ t: 1 }, { t: 2 }, { t: 3 }];
      const lost = await ingest(lossy.url, 'sensors.cut', readings, { token, sequence: 40 });
      expect(lost.status).toBe(503);
      expect(lost.body.error.retriable).toBe(true);
      expect(lost.headers.get('retry-after')).not.toBeNull();
      expect(await countRecords(hub.url, 'sensors.cut')).toBe(3);
      cut = false;
      const retry = await ingest(lossy.url, 'sensors.cut', readings, { token, sequence: 40 });
      expect(retry.status).toBe(200);
      expect(retry.body.duplicate).toBe(true);
      expect(retry.body.offsets).toHaveLength(3);
      expect(await countRecords(hub.url, 'sensors.cut')).toBe(3);
    } finally {
      await lossy.dispose();
      proxy.closeAllConnections();
      await new Promise<void>((resolve) => proxy.close(() => resolve()));
    }
  });

  it("a forward sequence gap comes back as the hub's own 409, retriable; a reused sequence answers duplicate and drops the new content", async () => {
    const token = await deviceToken({ sub: 'thermo-6' });
    expect((await ingest(edge.url, 'sensors.gap', [{ t: 1 }, { t: 2 }], { token, sequence: 0 })).status).toBe(200);
    const gap = await ingest(edge.url, 'sensors.gap', [{ t: 3 }], { token, sequence: 10 });
    expect(gap.status).toBe(409);
    expect(gap.body).toEqual({ error: { code: 'SEQUENCE_GAP', message: expect.any(String), retriable: true } });
    expect((await ingest(edge.url, 'sensors.gap', [{ t: 3 }], { token, sequence: 2 })).status).toBe(200);
    const reused = await ingest(edge.url, 'sensors.gap', [{ t: 4 }], { token, sequence: 1 });
    expect(reused.status).toBe(200);
    expect(reused.body.duplicate).toBe(true);
    expect(await countRecords(hub.url, 'sensors.gap')).toBe(3);
  });

  it('without x-sequence a repeated request is appended again (at-least-once)', async () => {
    const token = await deviceToken({ sub: 'thermo-5' });
    expect((await ingest(edge.url, 'sensors.alo', { t: 1 }, { token })).status).toBe(200);
    expect((await ingest(edge.url, 'sensors.alo', { t: 1 }, { token })).status).toBe(200);
    expect(await countRecords(hub.url, 'sensors.alo')).toBe(2);
  });

  it('10,000 readings from 100 devices arrive complete, each device in order', async () => {
    const devices = 100;
    const perDevice = 100;
    const batch = 10;
    const tokens = await Promise.all(Array.from({ length: devices }, (_, d) => deviceToken({ sub: `fleet-${d}` })));
    // Every device sends its batches one after another (a device waits for its
    // answer), all devices at once.
    await Promise.all(
      tokens.map(async (token, d) => {
        for (let seq = 0; seq < perDevice; seq += batch) {
          const readings = Array.from({ length: batch }, (_, i) => ({ device: d, n: seq + i, celsius: 20 + ((seq + i) % 7) }));
          const res = await ingest(edge.url, 'sensors.fleet', readings, { token, sequence: seq });
          if (res.status !== 200) throw new Error(`device ${d} seq ${seq}: ${res.status} ${JSON.stringify(res.body)}`);
        }
      }),
    );
    const byDevice = new Map<string, number[]>();
    let total = 0;
    for (const records of (await readTopic(hub.url, 'sensors.fleet')).values()) {
      for (const r of records) {
        total++;
        const id = String(headerOf(r, 'device-id'));
        const ns = byDevice.get(id) ?? [];
        ns.push((r.value as { n: number }).n);
        byDevice.set(id, ns);
      }
    }
    expect(total).toBe(devices * perDevice);
    expect(byDevice.size).toBe(devices);
    const inOrder = Array.from({ length: perDevice }, (_, i) => i);
    for (const [id, ns] of byDevice) expect(ns, id).toEqual(inOrder);
  });
});
