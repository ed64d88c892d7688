/**
 * client.produce(): events sent now, under the caller's producer id and
 * sequences, to one partition. A repeat of appended sequences (what a
 * stream task or a connector sends after a crash) answers the original
 * offsets with duplicate = true; a call made while the hub is down waits for
 * it and lands once.
 */
import { describe, expect, it } from 'vitest';
import { startHub } from '../../harness/hub.ts';
import { useHub } from '../../harness/hub-fixture.ts';
import { startTcpProxy } from '../../harness/tcp-proxy.ts';
import { crc32c } from '../../protocol/index.ts';
import { BatchBuilder, createClient, TributaryError, type Client } from '../../web-client/index.ts';
import { createTopic, readPartition } from '../../harness/topic-reader.ts';

const hub = useHub();
const client = (url = hub.wsUrl): Client => {
  const c = createClient({ url, outbox: 'memory', name: `d-${Math.random()}`, backoffMaxMs: 200 });
  hub.own(c);
  return c;
};

describe('client.produce (direct, caller-chosen sequences)', () => {
  it('lands events in the given partition in order, and a repeat of the same sequences is a duplicate with the same offsets', async () => {
    await createTopic(hub.url, 'direct', 3);
    const c = client();
    expect(await c.metadata('direct')).toEqual({ topic: 'direct', partitions: 3 });
    const events = Array.from({ length: 50 }, (_, n) => ({ key: `k${n}`, value: { n } }));
    const first = await c.produce('direct', events, { partition: 2, producerId: 'task-a', sequence: 0 });
    expect(first.duplicate).toBe(false);
    expect(first.partition).toBe(2);
    expect(first.offsets).toEqual(Array.from({ length: 50 }, (_, i) => i));

    const again = await c.produce('direct', events, { partition: 2, producerId: 'task-a', sequence: 0 });
    expect(again).toEqual({ ...first, duplicate: true });

    const next = await c.produce('direct', [{ value: { n: 50 } }], { partition: 2, producerId: 'task-a', sequence: 50 });
    expect(next.offsets).toEqual([50]);

    // Batches built by the caller (the stream lanes' path): the next sequences, then the same bytes again as a duplicate.
    const b = new BatchBuilder('task-a');
    for (let n = 51; n < 54; n++) b.add(`k${n}`, { n }, Date.now(), []);
    const built = [b.seal(51, crc32c)];
    expect(await c.produceBatches('direct', 2, built)).toEqual({ partition: 2, lastOffset: 53, duplicate: false });
    expect(await c.produceBatches('direct', 2, built)).toEqual({ partition: 2, lastOffset: 53, duplicate: true });

    const stored = await readPartition(hub.url, 'direct', 2);
    expect(stored.map((r) => (r.value as { n: number }).n)).toEqual(Array.from({ length: 54 }, (_, i) => i));
  });

  it('refuses bad arguments before sending', async () => {
    const c = client();
    await expect(c.produce('direct', [], { partition: 0, producerId: 'x', sequence: 0 })).rejects.toBeInstanceOf(TributaryError);
    await expect(c.produce('direct', [{ value: 1 }], { partition: -1, producerId: 'x', sequence: 0 })).rejects.toMatchObject({ code: 'BAD_PARTITION' });
    await expect(c.produce('direct', [{ value: 1 }], { partition: 0, producerId: '', sequence: 0 })).rejects.toMatchObject({ code: 'BAD_REQUEST' });
    await expect(c.produce('direct', [{ value: 1 }], { partition: 0, producerId: 'x', sequence: 1.5 })).rejects.toMatchObject({ code: 'BAD_SEQUENCE' });
  });

  it('waits for a hub that is down and lands once it is up; an unreachable hub fails after timeoutMs', async () => {
    const second = await startHub();
    const proxy = await startTcpProxy(second.port);
    await createTopic(second.url, 'waits', 1);
    const c = client(`ws://127.0.0.1:${proxy.port}/v1/ws`);
    await c.metadata('waits');
    await second.stop();
    const pending = c.produce('waits', [{ value: { n: 1 } }], { partition: 0, producerId: 'w', sequence: 0, timeoutMs: 30_000 });
    const again = await startHub({ dataDir: second.dataDir });
    proxy.retarget(again.port);
    try {
      const r = await pending;
      expect(r.offsets).toEqual([0]);
      expect((await readPartition(again.url, 'waits', 0)).length).toBe(1);
    } finally {
      await proxy.close();
      await again.stop();
      again.cleanup();
    }

    const lost = client('ws://127.0.0.1:1/v1/ws');
    await expect(lost.produce('x', [{ value: 1 }], { partition: 0, producerId: 'y', sequence: 0, timeoutMs: 500 })).rejects.toMatchObject({ code: 'DISCONNECTED' });
  });

  it('splits more events than one batch holds into several batches with dense sequences, headers and timestamps kept', async () => {
    await createTopic(hub.url, 'direct-many', 1);
    const c = client();
    // 25,000 records exceed LIMITS.maxRecordsPerBatch (10,000): three batches, one frame.
    const events = Array.from({ length: 25_000 }, (_, n) => ({ key: `k${n % 7}`, value: { n }, headers: { h: `v${n}` }, timestamp: 1_700_000_000_000 + n }));
    const first = await c.produce('direct-many', events, { partition: 0, producerId: 'many', sequence: 5 });
    expect(first.duplicate).toBe(false);
    expect(first.offsets).toEqual(Array.from({ length: 25_000 }, (_, i) => i));
    // A retry of the middle of it (sequences 10,005..): duplicates with the original offsets.
    const again = await c.produce('direct-many', events.slice(10_000, 12_000), { partition: 0, producerId: 'many', sequence: 10_005 });
    expect(again).toEqual({ partition: 0, offsets: Array.from({ length: 2000 }, (_, i) => 10_000 + i), duplicate: true });
    // Values over the batch byte budget (1 MiB) split by size too.
    const big = Array.from({ length: 12 }, (_, n) => ({ value: new Uint8Array(200_000).fill(n) }));
    const bigAck = await c.produce('direct-many', big, { partition: 0, producerId: 'many', sequence: 25_005 });
    expect(bigAck.offsets).toEqual(Array.from({ length: 12 }, (_, i) => 25_000 + i));
    const stored = await readPartition(hub.url, 'direct-many', 0);
    expect(stored.length).toBe(25_012);
    expect(stored.slice(0, 25_000).every((r, i) => (r.value as { n: number }).n === i && r.timestamp === 1_700_000_000_000 + i && r.key === `k${i % 7}`)).toBe(true);
    expect(stored[24_999].headers).toEqual([['h', 'v24999']]);
    // 25,000 events each way through a real hub: seconds when idle, more than 30 at a load average of 20.
  }, 120_000);
});
