/**
 * Pipelining (several produce requests in flight per topic) keeps
 * exactly-once and per-key order through the faults that test it: a proxy
 * that cuts connections at random points (including after the hub appended a
 * batch and before its ack reached the client), and a hub SIGKILLed in the
 * middle of a drain and started again on the same data.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { startHub, tempDir, type Hub } from '../../harness/hub.ts';
import { startTcpProxy, type TcpProxy } from '../../harness/tcp-proxy.ts';
import { createClient, type Client } from '../../web-client/index.ts';
import { createTopic, exactlyOnceProblems, readTopic } from '../../harness/topic-reader.ts';
import { waitFor } from '../../harness/wait.ts';

const hubs: Hub[] = [];
const proxies: TcpProxy[] = [];
const clients: Client[] = [];

afterAll(async () => {
  await Promise.all(clients.map((c) => c.close()));
  for (const p of proxies) await p.close();
  for (const h of hubs) {
    await h.stop();
    h.cleanup();
  }
});

const events = (from: number, n: number) => Array.from({ length: n }, (_, i) => ({ key: `k${(from + i) % 17}`, value: { n: from + i } }));

describe('pipelined produce under faults', () => {
  it('connections cut at random points: every event once, per key in send order', async () => {
    const hub = await startHub();
    hubs.push(hub);
    const proxy = await startTcpProxy(hub.port);
    proxies.push(proxy);
    await createTopic(hub.url, 'pipe-chaos', 4);
    const c = createClient({ url: proxy.wsUrl, outbox: 'memory', name: `pipe-${Math.random()}`, maxBatchRecords: 200, maxInFlightBatches: 5, backoffInitialMs: 20, backoffMaxMs: 200 });
    clients.push(c);
    proxy.chaos({ minBytes: 5_000, maxBytes: 120_000, seed: 13 });
    const total = 30_000;
    for (let i = 0; i < total; i += 5_000) await c.sendMany('pipe-chaos', events(i, 5_000));
    await waitFor(async () => proxy.cuts >= 5 || (await c.pending()) === 0, 60_000);
    proxy.chaos(undefined);
    await c.flush();
    expect(proxy.cuts).toBeGreaterThan(0);
    const records = await readTopic(hub.url, 'pipe-chaos');
    expect(exactlyOnceProblems(records, total)).toBe('');
    expect(records.length).toBe(total);
  }, 120_000);

  it('a hub SIGKILLed mid-drain and restarted on its data: every event once, per key in send order', async () => {
    const dataDir = tempDir();
    let hub = await startHub({ dataDir });
    const proxy = await startTcpProxy(hub.port);
    proxies.push(proxy);
    await createTopic(hub.url, 'pipe-kill', 4);
    const c = createClient({ url: proxy.wsUrl, outbox: 'memory', name: `kill-${Math.random()}`, maxBatchRecords: 500, backoffInitialMs: 20, backoffMaxMs: 300 });
    clients.push(c);
    const total = 40_000;
    const acked = { n: 0 };
    c.on('ack', (a) => (acked.n += a.records.length));
    for (let i = 0; i < total; i += 10_000) await c.sendMany('pipe-kill', events(i, 10_000));
    await waitFor(() => acked.n >= 5_000, 60_000);
    await hub.kill();
    hub = await startHub({ dataDir });
    hubs.push(hub);
    proxy.retarget(hub.port);
    proxy.cutAll();
    await c.flush();
    const records = await readTopic(hub.url, 'pipe-kill');
    expect(exactlyOnceProblems(records, total)).toBe('');
    expect(records.length).toBe(total);
  }, 180_000);
});

describe('a topic whose partition count grows while events drain', () => {
  it('every event once; per key, the events before the change in the old partition, the later ones in the new, in send order', async () => {
    const hub = await startHub();
    hubs.push(hub);
    await createTopic(hub.url, 'pipe-grow', 2);
    const c = createClient({ url: hub.wsUrl, outbox: 'memory', name: `grow-${Math.random()}`, maxBatchRecords: 250 });
    clients.push(c);
    const acked = { n: 0 };
    c.on('ack', (a) => (acked.n += a.records.length));
    const total = 20_000;
    const queued = (async () => {
      for (let i = 0; i < total; i += 2_000) await c.sendMany('pipe-grow', events(i, 2_000));
    })();
    await waitFor(() => acked.n >= 2_000, 60_000);
    const res = await fetch(`${hub.url}/v1/topics/pipe-grow`, { method: 'PATCH', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ partitions: 5 }) });
    expect(res.status).toBe(200);
    await queued;
    await c.flush();
    const records = await readTopic(hub.url, 'pipe-grow');
    expect(records.length).toBe(total);
    const seen = new Set<number>();
    // Per key: its records, in partition order of first appearance, must be in send order across the switch.
    const byKey = new Map<string, Array<{ n: number; partition: number; offset: number }>>();
    for (const r of records) {
      const n = (r.value as { n: number }).n;
      expect(seen.has(n)).toBe(false);
      seen.add(n);
      const k = String(r.key);
      if (!byKey.has(k)) byKey.set(k, []);
      byKey.get(k)!.push({ n, partition: r.partition, offset: r.offset });
    }
    expect(seen.size).toBe(total);
    let moved = 0;
    for (const list of byKey.values()) {
      const partitions = [...new Set(list.map((x) => x.partition))];
      expect(partitions.length).toBeLessThanOrEqual(2);
      // Within a partition, offset order is send order; across the two, every event of the first-used partition precedes the other's.
      const groups = partitions.map((p) =>
        list
          .filter((x) => x.partition === p)
          .sort((a, b) => a.offset - b.offset)
          .map((x) => x.n),
      );
      for (const g of groups) expect(g).toEqual([...g].sort((a, b) => a - b));
      if (groups.length === 2) {
        moved++;
        const [a, b] = groups[0][0] < groups[1][0] ? groups : [groups[1], groups[0]];
        expect(a[a.length - 1]).toBeLessThan(b[0]);
      }
    }
    expect(moved).toBeGreaterThan(0);
  }, 120_000);
});
