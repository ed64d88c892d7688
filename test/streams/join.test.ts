/**
 * Stream–table join against a real hub: a latest-value table read from a
 * compacted topic (updates replace, tombstones delete) enriches a stream by key.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient, type Client } from '../../web-client/node.ts';
import { stream } from '../../streams/index.ts';
import { startHub, type Hub } from '../../harness/hub.ts';
import { produceInput, readTopic, waitFor } from './fixtures.ts';

let hub: Hub;
let client: Client;

beforeAll(async () => {
  hub = await startHub();
  client = createClient({ url: hub.wsUrl, outbox: 'memory', name: 'join' });
});
afterAll(async () => {
  await client?.close();
  await hub?.stop();
  hub?.cleanup();
});

async function topic(name: string, partitions: number, config?: Record<string, unknown>): Promise<void> {
  const res = await fetch(`${hub.url}/v1/topics`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name, partitions, config }) });
  expect(res.status).toBe(201);
}

describe('stream–table join (real hub)', () => {
  it('enriches each reading with the latest row of its room; a tombstone removes the row', async () => {
    await topic('rooms', 2, { cleanupPolicy: 'compact' });
    await topic('readings', 2);
    await topic('readings-enriched', 2);
    const t = 1_700_000_000_000;
    await produceInput(client, 'rooms', 2, [
      { key: 'r1', value: { floor: 1 }, timestamp: t },
      { key: 'r2', value: { floor: 2 }, timestamp: t },
      { key: 'r1', value: { floor: 10 }, timestamp: t + 1 }, // the latest value wins
      { key: 'r3', value: { floor: 3 }, timestamp: t },
      { key: 'r3', value: null, timestamp: t + 1 }, // deleted
    ]);

    const app = stream(client, { applicationId: 'enrich', httpUrl: hub.url });
    const rooms = app.table<{ floor: number }>('rooms');
    app
      .from<{ c: number }>('readings')
      .join(rooms, (r, room) => ({ c: r.value.c, floor: room.floor }))
      .to('readings-enriched');
    await app.start();
    await waitFor(() => rooms.size === 2 && rooms.get('r1')?.floor === 10, 30_000, 'table read');

    await produceInput(
      client,
      'readings',
      2,
      ['r1', 'r2', 'r3', 'r1'].map((key, i) => ({ key, value: { c: 20 + i }, timestamp: t + 100 + i })),
    );
    await waitFor(() => app.metrics().processed === 4, 30_000, 'readings processed');
    await app.close();

    const out = (await readTopic(hub.url, 'readings-enriched')).map((r) => [r.key, r.value]).sort((a, b) => (a[1] as { c: number }).c - (b[1] as { c: number }).c);
    expect(out).toEqual([
      ['r1', { c: 20, floor: 10 }],
      ['r2', { c: 21, floor: 2 }],
      ['r1', { c: 23, floor: 10 }],
    ]);
  }, 60_000);
});
