/**
 * Consumer groups with real web clients against a real hub: the hub assigns
 * (sticky, balanced), every record goes to exactly one member, a dropped
 * member's partitions move on after its session timeout and processing
 * resumes from the last commit, and a member whose generation ended is fenced.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Hub } from '../../harness/hub.ts';
import { startTcpProxy, type TcpProxy } from '../../harness/tcp-proxy.ts';
import { WsClient } from '../helpers/ws-client.ts';
import { createClient } from '../../web-client/node.ts';
import { SESSION_TIMEOUT_MS, createTopic, groupView, keysOf, member, produce, sleep, startGroupHub, waitFor, type TestMember } from './support.ts';

let hub: Hub;
const members: TestMember[] = [];
const proxies: TcpProxy[] = [];

beforeAll(async () => {
  hub = await startGroupHub();
});
afterAll(async () => {
  await Promise.all(members.map((m) => m.client.close()));
  await Promise.all(proxies.map((p) => p.close()));
  await hub?.stop();
  hub?.cleanup();
});

function join(name: string, topic: string, group: string, url = hub.wsUrl): TestMember {
  const m = member(url, name, topic, group);
  members.push(m);
  return m;
}

describe('consumer groups', () => {
  it('3 members share 12 partitions 4/4/4 and every record goes to exactly one member', async () => {
    await createTopic(hub.url, 'orders', 12);
    const ms = [join('a', 'orders', 'billing'), join('b', 'orders', 'billing'), join('c', 'orders', 'billing')];
    await waitFor(() => ms.every((m) => m.sub.assignment().length === 4), 10_000, 'a 4/4/4 assignment');
    const all = ms.flatMap((m) => m.sub.assignment()).sort((x, y) => x - y);
    expect(all).toEqual(Array.from({ length: 12 }, (_, i) => i));

    await produce(hub.wsUrl, 'orders', 12, 0, 600);
    await waitFor(() => ms.reduce((n, m) => n + m.seen.length, 0) >= 600, 15_000, '600 records handled');
    await sleep(200); // proves a negative: anything extra (a duplicate) would arrive now
    const keys = ms.flatMap((m) => keysOf(m.seen));
    expect(keys.length).toBe(600);
    expect(new Set(keys).size).toBe(600);
    for (const m of ms) for (const r of m.seen) expect(m.sub.assignment()).toContain(r.partition);

    // Auto-commit caught up: lag 0 everywhere, the group stable in one generation.
    await waitFor(async () => (await groupView(hub.url, 'billing'))!.offsets.every((o) => o.lag === 0), 10_000, 'lag 0');
    const view = (await groupView(hub.url, 'billing'))!;
    expect(view.state).toBe('stable');
    expect(view.members.map((m) => m.partitions.length).sort()).toEqual([4, 4, 4]);
    for (const o of view.offsets) expect(o.committed).toBe(50);
    for (const m of ms) expect(m.errors).toEqual([]);
  });

  it('a record in hand when its partition is revoked is committed before the confirm: the next owner starts after it', async () => {
    // docs/protocol.md: records being handled finish, what was finished is committed, then the member confirms.
    // The web client used to drop the commit of a frame whose partition was revoked while its handler ran, so
    // the next owner got those records again (the hubs-over-JetStream group test once saw one such duplicate).
    await createTopic(hub.url, 'handover', 2);
    const a = join('handover-a', 'handover', 'handovers');
    await waitFor(() => a.sub.assignment().length === 2, 10_000, 'a owns both partitions');
    let release!: () => void;
    a.gate = new Promise<void>((r) => (release = r));
    const producer = createClient({ url: hub.wsUrl, outbox: 'memory', name: 'handover-producer' });
    for (let n = 0; n < 10; n++) await producer.send('handover', { partition: 1, value: { n } });
    await producer.flush();
    await producer.close();
    await waitFor(() => a.inHand !== null, 10_000, 'a handling the first record');
    // b joins: the sticky assignor keeps the lower partition with a and moves partition 1, the one in hand.
    const b = join('handover-b', 'handover', 'handovers');
    await waitFor(() => a.sub.assignment().join() === '0', 10_000, 'a told to give up partition 1');
    release();
    await waitFor(() => b.sub.assignment().join() === '1', 10_000, 'b owns partition 1');
    await waitFor(() => a.seen.length + b.seen.length >= 10, 10_000, '10 records handled');
    await sleep(200); // proves a negative: a duplicate would show up now
    expect(keysOf(a.seen)).toEqual(['1:0']);
    expect(keysOf(b.seen)).toEqual(Array.from({ length: 9 }, (_, i) => `1:${i + 1}`));
    expect([...a.errors, ...b.errors]).toEqual([]);
  });

  it('a dropped member loses its partitions within the session timeout; the others resume from its last commit', async () => {
    await createTopic(hub.url, 'drops', 6);
    const proxy = await startTcpProxy(hub.port);
    proxies.push(proxy);
    const a = join('drop-a', 'drops', 'droppers');
    const b = join('drop-b', 'drops', 'droppers');
    const c = join('drop-c', 'drops', 'droppers', proxy.wsUrl);
    await waitFor(() => [a, b, c].every((m) => m.sub.assignment().length === 2), 10_000, 'a 2/2/2 assignment');
    await produce(hub.wsUrl, 'drops', 6, 0, 300);
    await waitFor(() => a.seen.length + b.seen.length + c.seen.length >= 300, 15_000, '300 handled');
    await waitFor(async () => (await groupView(hub.url, 'droppers'))!.offsets.every((o) => o.lag === 0), 10_000, 'first commits');

    // c holds still with records in hand, its commits settle, then its network goes away (no leave).
    let release!: () => void;
    c.gate = new Promise<void>((r) => (release = r));
    const cParts = c.sub.assignment();
    await produce(hub.wsUrl, 'drops', 6, 300, 300);
    await waitFor(() => a.seen.length + b.seen.length >= 200 + 100, 15_000, 'a and b handle theirs');
    const before = (await groupView(hub.url, 'droppers'))!;
    const committedAtCut = new Map(before.offsets.map((o) => [o.partition, o.committed!]));
    proxy.block(true);
    proxy.cutAll();
    const cutAt = Date.now();
    release();

    await waitFor(() => a.sub.assignment().length + b.sub.assignment().length === 6, SESSION_TIMEOUT_MS + 5_000, 'c’s partitions to move');
    const movedAfterMs = Date.now() - cutAt;
    expect(movedAfterMs).toBeGreaterThanOrEqual(SESSION_TIMEOUT_MS - 300);
    expect(a.sub.assignment().length).toBe(3);

    await waitFor(
      () => {
        const seen = new Set([...keysOf(a.seen), ...keysOf(b.seen), ...keysOf(c.seen)]);
        return seen.size >= 600;
      },
      15_000,
      'every record handled',
    );
    // c may have handled its queue after the cut; the new owners still go to the end of its partitions.
    await waitFor(() => cParts.every((p) => [...a.seen, ...b.seen].some((r) => r.partition === p && r.offset === 99)), 15_000, 'the new owners to reach the end');
    // Nothing lost; the new owners started at c's last commit exactly (duplicates only above it).
    for (const p of cParts) {
      const took = [...a.seen, ...b.seen].filter((r) => r.partition === p).map((r) => r.offset);
      const fromC = c.seen.filter((r) => r.partition === p).map((r) => r.offset);
      const after = took.filter((o) => o >= 50); // the first 50 of each partition were c's before the cut
      expect(Math.min(...after)).toBe(committedAtCut.get(p));
      expect(new Set([...fromC, ...took]).size).toBe(100);
      for (const o of took) if (fromC.includes(o)) expect(o).toBeGreaterThanOrEqual(committedAtCut.get(p)!);
    }
  });

  it('a member that comes back after its generation ended cannot commit (FENCED)', async () => {
    await createTopic(hub.url, 'fenced', 2);
    const ws = await WsClient.connect(hub.wsUrl);
    await ws.hello();
    const ok = await ws.request({ t: 'subscribe', topic: 'fenced', group: 'fencing', from: 'earliest' });
    const memberId = ok.member as string;
    expect(typeof memberId).toBe('string');
    expect(ok).toMatchObject({ generation: 1, sessionTimeoutMs: SESSION_TIMEOUT_MS });
    // While live and owning both partitions, it may commit.
    await ws.request({ t: 'commit', group: 'fencing', topic: 'fenced', offsets: [[0, 0]], member: memberId, generation: 1 });
    ws.ws.terminate(); // dropped, no leave: it stays a member until its session ends

    const other = join('fence-b', 'fenced', 'fencing');
    await waitFor(() => other.sub.assignment().length === 2, SESSION_TIMEOUT_MS + 5_000, 'the partitions to move');

    const back = await WsClient.connect(hub.wsUrl);
    await back.hello();
    await expect(back.request({ t: 'commit', group: 'fencing', topic: 'fenced', offsets: [[0, 5]], member: memberId, generation: 1 })).rejects.toMatchObject({ code: 'FENCED' });
    // Rejoining with the old id makes a new member (a new generation), which owns nothing yet.
    const again = await back.request({ t: 'subscribe', topic: 'fenced', group: 'fencing', from: 'earliest', member: memberId });
    expect(again.member).not.toBe(memberId);
    expect(again.generation as number).toBeGreaterThan(1);
    await expect(back.request({ t: 'commit', group: 'fencing', topic: 'fenced', offsets: [[0, 5]], member: memberId })).rejects.toMatchObject({ code: 'FENCED' });
    // A tool may not commit while the group has members.
    await expect(back.request({ t: 'commit', group: 'fencing', topic: 'fenced', offsets: [[0, 5]] })).rejects.toMatchObject({ code: 'CONFLICT' });
    await back.close();
  });
});
