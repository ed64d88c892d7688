/**
 * Re-keying through the repartition topic keeps each key's order, and the
 * same application run twice over the same history writes the same output
 * (real hub).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient, type Client } from '../../web-client/node.ts';
import { stream } from '../../streams/index.ts';
import { startHub, type Hub } from '../../harness/hub.ts';
import { createTopic, produceInput, readTopic, waitFor, type InputEvent } from './fixtures.ts';

let hub: Hub;
let client: Client;

beforeAll(async () => {
  hub = await startHub();
  client = createClient({ url: hub.wsUrl, outbox: 'memory', name: 'rekey' });
});
afterAll(async () => {
  await client?.close();
  await hub?.stop();
  hub?.cleanup();
});

interface Order {
  user: string;
  n: number;
  amount: number;
}

/** Orders keyed by order id; each user's orders numbered 0, 1, … and all in one input partition, in order. */
function orders(count: number, users: number): InputEvent[] {
  const next = new Map<string, number>();
  return Array.from({ length: count }, (_, i) => {
    const u = (i * 7919) % users;
    const user = `user-${u}`;
    const n = next.get(user) ?? 0;
    next.set(user, n + 1);
    return { key: `order-${i}`, value: { user, n, amount: i % 100 }, timestamp: 1_700_000_000_000 + i, partition: u % 3 };
  });
}

describe('re-keying (real hub)', () => {
  it('a re-keyed aggregation sees every key in its original order', async () => {
    await createTopic(hub.url, 'orders', 3);
    await createTopic(hub.url, 'per-user', 2);
    const input = orders(20_000, 37);
    await produceInput(client, 'orders', 3, input);

    const app = stream(client, { applicationId: 'shop', httpUrl: hub.url, staticAssignment: 'all' });
    app
      .from<Order>('orders')
      .groupBy((r) => r.value.user, { name: 'by-user', partitions: 2 })
      .aggregate(
        () => ({ count: 0, last: -1, inOrder: true, total: 0 }),
        (acc, r) => ({ count: acc.count + 1, last: r.value.n, inOrder: acc.inOrder && r.value.n === acc.last + 1, total: acc.total + r.value.amount }),
        { name: 'per-user' },
      )
      .to('per-user');
    await app.start();
    await waitFor(() => app.metrics().processed === 2 * input.length, 180_000, 'input and repartitioned records processed');
    await app.close();

    // The repartition topic itself: every user's orders in order, in one partition.
    const re = await readTopic(hub.url, 'shop-by-user-repartition');
    expect(re).toHaveLength(input.length);
    const seen = new Map<string, { p: number; n: number }>();
    for (const r of re) {
      const v = r.value as Order;
      const prev = seen.get(v.user);
      if (prev) {
        expect(r.partition).toBe(prev.p);
        expect(v.n).toBe(prev.n + 1);
      } else expect(v.n).toBe(0);
      seen.set(v.user, { p: r.partition, n: v.n });
    }

    const latest = new Map<string, { count: number; inOrder: boolean; total: number }>();
    for (const r of await readTopic(hub.url, 'per-user')) latest.set(r.key as string, r.value as { count: number; inOrder: boolean; total: number });
    expect(latest.size).toBe(37);
    for (const [user, v] of latest) {
      const mine = input.filter((e) => (e.value as Order).user === user);
      expect(v).toMatchObject({ count: mine.length, inOrder: true, total: mine.reduce((s, e) => s + (e.value as Order).amount, 0) });
    }
  }, 240_000);

  it('the same application run twice over the same history writes the same output', async () => {
    await createTopic(hub.url, 'visits', 3);
    const input = orders(10_000, 50).map((e, i) => ({ ...e, timestamp: 1_700_000_000_000 + i * 37 }));
    await produceInput(client, 'visits', 3, input);

    const run = async (id: string): Promise<string[]> => {
      await createTopic(hub.url, `${id}-out`, 2);
      const app = stream(client, { applicationId: id, httpUrl: hub.url, staticAssignment: 'all', maxPendingRecords: 700 + id.length * 300 });
      app
        .from<Order>('visits')
        .filter((r) => r.value.amount % 3 !== 0)
        .groupBy((r) => r.value.user, { name: 'by-user' })
        // Records of different input partitions interleave in the repartition topic as they arrive, so
        // stream time there depends on timing; with a grace no record exceeds, nothing is late in either run.
        .window({ tumblingMs: 5_000, graceMs: 3_600_000 })
        .aggregate(
          () => 0,
          (sum, r) => sum + r.value.amount,
          { name: 'sums' },
        )
        .to(`${id}-out`);
      await app.start();
      const expected = input.filter((e) => (e.value as Order).amount % 3 !== 0).length;
      await waitFor(() => app.metrics().processed === input.length + expected, 150_000, `${id} processed`);
      await app.close();
      // Per output partition, each producer's records in order (tasks interleave differently from run to run).
      const out = await readTopic(hub.url, `${id}-out`);
      const byKey = new Map<string, unknown[]>();
      for (const r of out) {
        const k = `${r.partition}/${String(r.key)}`;
        let l = byKey.get(k);
        if (!l) byKey.set(k, (l = []));
        l.push(r.value);
      }
      return [...byKey].sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, v]) => `${k} ${JSON.stringify(v)}`);
    };
    const first = await run('twice');
    const second = await run('twice-again');
    expect(first.length).toBeGreaterThan(1000);
    expect(second.length).toBe(first.length);
    expect(second.filter((line, i) => line !== first[i]).slice(0, 3)).toEqual([]);
  }, 360_000);
});
