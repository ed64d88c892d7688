/**
 * Committed offsets and what tools see of groups, against a real hub:
 * offsets survive a restart, lag while a group is stopped and after it
 * catches up, reset and delete (refused while the group has members),
 * /metrics, the hidden internal topic, and a member that resumes its
 * membership (and partitions) after its connection drops.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHub, type Hub } from '../../harness/hub.ts';
import { startTcpProxy } from '../../harness/tcp-proxy.ts';
import { WsClient, bytes } from '../helpers/ws-client.ts';
import { HEARTBEAT_INTERVAL_MS, createTopic, groupView, member, produce, sleep, startGroupHub, waitFor, type TestMember } from './support.ts';

const hubs: Hub[] = [];
const members: TestMember[] = [];
/** One hub for the tests that need no restart (starting hubs is the slow part on a loaded machine). */
let shared: Hub;

beforeAll(async () => {
  shared = await hub();
});

afterAll(async () => {
  await Promise.all(members.map((m) => m.client.close()));
  for (const h of hubs) {
    await h.stop();
    h.cleanup();
  }
});

async function hub(opts: Parameters<typeof startGroupHub>[0] = {}): Promise<Hub> {
  const h = await startGroupHub(opts);
  hubs.push(h);
  return h;
}

function join(h: Hub, name: string, topic: string, group: string, url = h.wsUrl): TestMember {
  const m = member(url, name, topic, group);
  members.push(m);
  return m;
}

const lagOf = async (h: Hub, group: string): Promise<number> => (await groupView(h.url, group))!.offsets.reduce((n, o) => n + o.lag, 0);

describe('committed offsets', () => {
  it('survive a hub restart: a new member starts where the group left off', async () => {
    const h = await hub();
    await createTopic(h.url, 'ledger', 3);
    await produce(h.wsUrl, 'ledger', 3, 0, 90);
    const a = join(h, 'restart-a', 'ledger', 'auditors');
    await waitFor(() => a.seen.length === 90, 15_000, '90 handled');
    await waitFor(async () => (await lagOf(h, 'auditors')) === 0, 10_000, 'commits');
    await a.client.close();
    await h.stop();

    const again = await startHub({ dataDir: h.dataDir });
    hubs.push(again);
    const view = (await groupView(again.url, 'auditors'))!;
    expect(view.state).toBe('empty');
    expect(view.offsets.map((o) => o.committed)).toEqual([30, 30, 30]);
    await produce(again.wsUrl, 'ledger', 3, 90, 30);
    const b = join(again, 'restart-b', 'ledger', 'auditors');
    await waitFor(() => b.seen.length >= 30, 15_000, 'the 30 new records');
    await sleep(200); // proves a negative: a record already committed would show up again by now
    expect(b.seen.map((r) => (r.value as { n: number }).n).sort((x, y) => x - y)).toEqual(Array.from({ length: 30 }, (_, i) => 90 + i));
  });

  it('lag counts what a stopped group has not consumed, and returns to 0 when it catches up', async () => {
    const h = shared;
    await createTopic(h.url, 'metered', 4);
    const a = join(h, 'lag-a', 'metered', 'meters');
    await waitFor(() => a.sub.assignment().length === 4, 10_000, 'assignment');
    await produce(h.wsUrl, 'metered', 4, 0, 40);
    await waitFor(async () => (await lagOf(h, 'meters')) === 0 && a.seen.length === 40, 10_000, 'caught up');
    await a.client.close();
    await waitFor(async () => (await groupView(h.url, 'meters'))!.members.length === 0, 5_000, 'a to leave');

    await produce(h.wsUrl, 'metered', 4, 40, 60);
    const view = (await groupView(h.url, 'meters'))!;
    expect(view.offsets.map((o) => [o.partition, o.committed, o.highWatermark, o.lag])).toEqual([
      [0, 10, 25, 15],
      [1, 10, 25, 15],
      [2, 10, 25, 15],
      [3, 10, 25, 15],
    ]);
    const list = (await (await fetch(`${h.url}/v1/groups`)).json()) as { groups: Array<Record<string, unknown>> };
    expect(list.groups).toContainEqual({ group: 'meters', state: 'empty', generation: expect.any(Number), members: 0, topics: ['metered'], lag: 60 });
    const metrics = await (await fetch(`${h.url}/metrics`)).text();
    expect(metrics).toMatch(/tributary_group_lag\{group="meters",topic="metered",partition="2"\} 15/);
    expect(metrics).toMatch(/tributary_group_members\{group="meters"\} 0/);
    expect(metrics).toMatch(/tributary_group_rebalances_total\{group="meters"\} 2/);

    const b = join(h, 'lag-b', 'metered', 'meters');
    await waitFor(() => b.seen.length === 60, 10_000, 'the backlog');
    await waitFor(async () => (await lagOf(h, 'meters')) === 0, 10_000, 'lag 0');
    expect(await (await fetch(`${h.url}/metrics`)).text()).toMatch(/tributary_group_members\{group="meters"\} 1/);
  });

  it('reset and delete are refused while the group has members, and work when it is empty', async () => {
    const h = shared;
    await createTopic(h.url, 'resets', 2);
    await produce(h.wsUrl, 'resets', 2, 0, 20);
    const a = join(h, 'reset-a', 'resets', 'resetters');
    await waitFor(() => a.seen.length === 20, 10_000, 'handled');
    const post = (body: unknown) => fetch(`${h.url}/v1/groups/resetters/reset`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    const busy = await post({ topic: 'resets', to: 'earliest' });
    expect(busy.status).toBe(409);
    expect(((await busy.json()) as { error: { code: string } }).error.code).toBe('CONFLICT');
    expect((await fetch(`${h.url}/v1/groups/resetters`, { method: 'DELETE' })).status).toBe(409);
    await a.client.close();
    await waitFor(async () => (await groupView(h.url, 'resetters'))!.members.length === 0, 5_000, 'a to leave');

    const toEarliest = await post({ topic: 'resets', to: 'earliest' });
    expect(toEarliest.status).toBe(200);
    expect(((await toEarliest.json()) as { offsets: Array<{ committed: number; lag: number }> }).offsets.map((o) => [o.committed, o.lag])).toEqual([
      [0, 10],
      [0, 10],
    ]);
    const one = await post({ topic: 'resets', to: { offset: 4 }, partitions: [1] });
    expect(((await one.json()) as { offsets: Array<{ partition: number; committed: number }> }).offsets).toMatchObject([{ partition: 1, committed: 4 }]);
    expect((await post({ topic: 'resets', to: 'sideways' })).status).toBe(400);
    expect((await post({ topic: 'resets', to: 'latest' })).status).toBe(200);
    expect((await groupView(h.url, 'resetters'))!.offsets.map((o) => o.committed)).toEqual([10, 10]);

    // A reset to the start replays everything to the next member.
    await post({ topic: 'resets', to: { timestamp: 0 } });
    const b = join(h, 'reset-b', 'resets', 'resetters');
    await waitFor(() => b.seen.length === 20, 10_000, 'the replay');
    await b.client.close();
    await waitFor(async () => (await groupView(h.url, 'resetters'))!.members.length === 0, 5_000, 'b to leave');

    expect((await fetch(`${h.url}/v1/groups/resetters`, { method: 'DELETE' })).status).toBe(204);
    const gone = await fetch(`${h.url}/v1/groups/resetters`);
    expect(gone.status).toBe(404);
    expect(((await gone.json()) as { error: { code: string } }).error.code).toBe('UNKNOWN_GROUP');
  });

  it('keeps __consumer_offsets internal: hidden from the topic list, closed to producers', async () => {
    const h = shared;
    const names = async (q = ''): Promise<string[]> => ((await (await fetch(`${h.url}/v1/topics${q}`)).json()) as { topics: Array<{ name: string }> }).topics.map((t) => t.name);
    expect(await names()).not.toContain('__consumer_offsets');
    expect(await names('?internal=true')).toContain('__consumer_offsets');
    const c = await WsClient.connect(h.wsUrl);
    await c.hello();
    await expect(c.produce('__consumer_offsets', [{ k: 'g\u0000t\u00000', v: bytes('999') }])).rejects.toMatchObject({ code: 'FORBIDDEN' });
    const res = await fetch(`${h.url}/v1/topics/__consumer_offsets/records`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ records: [{ value: 1 }] }) });
    expect(res.status).toBe(403);
    await c.close();
  });

  it('a member whose connection drops comes back as the same member with the same partitions', async () => {
    const h = shared;
    await createTopic(h.url, 'tunnel', 4);
    const proxy = await startTcpProxy(h.port);
    try {
      const a = join(h, 'tunnel-a', 'tunnel', 'phones');
      const b = join(h, 'tunnel-b', 'tunnel', 'phones', proxy.wsUrl);
      await waitFor(() => a.sub.assignment().length === 2 && b.sub.assignment().length === 2, 10_000, 'a 2/2 assignment');
      const before = (await groupView(h.url, 'phones'))!;
      const held = b.sub.assignment();
      proxy.cutAll(); // the client reconnects at once, well within the session timeout
      await sleep(HEARTBEAT_INTERVAL_MS * 2); // proves a negative: the group does not rebalance across the reconnect
      await produce(h.wsUrl, 'tunnel', 4, 0, 40);
      await waitFor(() => a.seen.length + b.seen.length >= 40, 10_000, 'records after the reconnect');
      const after = (await groupView(h.url, 'phones'))!;
      expect(after.generation).toBe(before.generation);
      expect(after.members.map((m) => m.member).sort()).toEqual(before.members.map((m) => m.member).sort());
      expect(b.sub.assignment()).toEqual(held);
      expect(b.seen.every((r) => held.includes(r.partition))).toBe(true);
      expect(b.seen.length).toBe(20);
    } finally {
      await proxy.close();
    }
  });
});
