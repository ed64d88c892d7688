/**
 * Consumer groups (issue 14's figures), against a real hub on loopback:
 * - delivery: records/s through a group of 3 web-client members, beside one
 *   plain subscription of the same topic (goal: the group ≥ 80% of plain);
 * - rebalance: 100 members on 64 partitions; one member leaves (or joins)
 *   cleanly, and the time until every partition is owned again, as the
 *   members see it, p50/p99 over the rounds (goal < 500 ms);
 * - drop: a member's connection dies without a leave; the time until its
 *   partitions are owned again (goal: within the session timeout + 500 ms).
 *
 *   node --import tsx bench/groups.ts [--quick]
 */
import { pathToFileURL } from 'node:url';
import WebSocket from 'ws';
import { encodeCbor } from '../protocol/codec.ts';
import { startHub, type Hub } from '../harness/hub.ts';
import { createClient, type Client, type SubscriptionHandle } from '../web-client/node.ts';

export interface BenchResult {
  scenario: 'groups-delivery' | 'groups-rebalance' | 'groups-drop';
  system: string;
  eventsPerSec: number;
  p50Ms?: number;
  p99Ms?: number;
  notes?: string;
}

const SESSION_TIMEOUT_MS = 3000;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function waitFor(cond: () => boolean, deadlineMs: number, what: string, everyMs = 1): Promise<void> {
  const deadline = performance.now() + deadlineMs;
  while (!cond()) {
    if (performance.now() > deadline) throw new Error(`timed out after ${deadlineMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

function percentile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

async function createTopic(hub: Hub, name: string, partitions: number): Promise<void> {
  const res = await fetch(`${hub.url}/v1/topics`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name, partitions }) });
  if (res.status !== 201) throw new Error(`create ${name}: ${res.status}`);
}

/** Fills `topic` with `count` records of 100 bytes, spread over its partitions, through the web client. */
async function fill(hub: Hub, topic: string, partitions: number, count: number): Promise<void> {
  const c = createClient({ url: hub.wsUrl, outbox: 'memory', name: `fill-${topic}`, maxBatchRecords: 1000 });
  const value = new Uint8Array(100);
  for (let n = 0; n < count; n++) {
    void c.send(topic, { partition: n % partitions, value });
    if (n % 5000 === 4999) await c.flush();
  }
  await c.flush();
  await c.close();
}

/** Records/s from the start of the topic to its end, through `consumers` subscriptions (with `group` when given). */
async function drain(hub: Hub, topic: string, count: number, consumers: number, group?: string): Promise<number> {
  const clients: Client[] = [];
  let seen = 0;
  const started = performance.now();
  for (let i = 0; i < consumers; i++) {
    const c = createClient({ url: hub.wsUrl, outbox: 'memory', name: `drain-${i}` });
    clients.push(c);
    c.subscribe(topic, { from: 'earliest', ...(group ? { group } : {}) }, () => {
      seen++;
    });
  }
  await waitFor(() => seen >= count, 300_000, `${count} records`, 5);
  const secs = (performance.now() - started) / 1000;
  await Promise.all(clients.map((c) => c.close()));
  return count / secs;
}

async function delivery(hub: Hub, quick: boolean): Promise<BenchResult[]> {
  const count = quick ? 30_000 : 200_000;
  await createTopic(hub, 'bench-groups', 6);
  await fill(hub, 'bench-groups', 6, count);
  const plain = await drain(hub, 'bench-groups', count, 1);
  const grouped = await drain(hub, 'bench-groups', count, 3, 'bench-delivery');
  const ratio = grouped / plain;
  return [
    { scenario: 'groups-delivery', system: 'hub plain subscription', eventsPerSec: Math.round(plain), notes: `${count} records of 100 B on 6 partitions, one web-client subscription from earliest` },
    {
      scenario: 'groups-delivery',
      system: 'hub group of 3',
      eventsPerSec: Math.round(grouped),
      notes: `3 web-client members, auto-commit on; ${(ratio * 100).toFixed(0)}% of plain (goal ≥ 80%: ${ratio >= 0.8 ? 'met' : 'missed'})`,
    },
  ];
}

interface Member {
  client: Client;
  sub: SubscriptionHandle;
}

function joinMember(hub: Hub, topic: string, group: string, i: number): Member {
  const client = createClient({ url: hub.wsUrl, outbox: 'memory', name: `m-${i}` });
  const sub = client.subscribe(topic, { group, from: 'latest' }, () => undefined);
  return { client, sub };
}

/** True when the members' held sets cover every partition exactly once. */
function allOwned(members: Iterable<Member>, partitions: number): boolean {
  const seen = new Uint8Array(partitions);
  let n = 0;
  for (const m of members) {
    for (const p of m.sub.assignment()) {
      if (seen[p]) return false;
      seen[p] = 1;
      n++;
    }
  }
  return n === partitions;
}

async function rebalance(hub: Hub, quick: boolean): Promise<BenchResult[]> {
  const partitions = 64;
  const memberCount = quick ? 40 : 100;
  const rounds = quick ? 10 : 50;
  await createTopic(hub, 'bench-rebalance', partitions);
  const members = new Set<Member>();
  for (let i = 0; i < memberCount; i++) members.add(joinMember(hub, 'bench-rebalance', 'bench-rebalance', i));
  await waitFor(() => allOwned(members, partitions), 60_000, 'the first full assignment', 5);
  const leaves: number[] = [];
  const joins: number[] = [];
  let next = memberCount;
  for (let r = 0; r < rounds; r++) {
    // Leave: an owner, so that its partition has to move.
    const owner = [...members].find((m) => m.sub.assignment().length > 0)!;
    members.delete(owner);
    let t = performance.now();
    owner.sub.close();
    await waitFor(() => allOwned(members, partitions), 10_000, 'partitions owned again after a leave');
    leaves.push(performance.now() - t);
    void owner.client.close();
    // Join: until the newcomer has its assignment and everything is owned.
    t = performance.now();
    const fresh = joinMember(hub, 'bench-rebalance', 'bench-rebalance', next++);
    members.add(fresh);
    const view = async (): Promise<boolean> => {
      const res = await fetch(`${hub.url}/v1/groups/bench-rebalance`);
      const g = (await res.json()) as { state: string; members: unknown[] };
      return g.state === 'stable' && g.members.length === members.size;
    };
    let stable = false;
    await waitFor(
      () => {
        if (!stable) void view().then((s) => (stable = s));
        return stable && allOwned(members, partitions);
      },
      10_000,
      'a stable group after a join',
      2,
    );
    joins.push(performance.now() - t);
    await sleep(20);
  }
  await Promise.all([...members].map((m) => m.client.close()));
  const row = (what: string, xs: number[]): BenchResult => {
    const s = [...xs].sort((a, b) => a - b);
    const p99 = percentile(s, 0.99);
    return {
      scenario: 'groups-rebalance',
      system: `hub ${what}`,
      eventsPerSec: 0,
      p50Ms: Number(percentile(s, 0.5).toFixed(1)),
      p99Ms: Number(p99.toFixed(1)),
      notes: `${memberCount} members on ${partitions} partitions, ${rounds} rounds: a clean ${what} until every partition is owned again (goal < 500 ms: ${p99 < 500 ? 'met' : 'missed'})`,
    };
  };
  return [row('leave', leaves), row('join', joins)];
}

/** A member over a bare socket, so that the bench can kill its connection without a leave. */
async function rawMember(hub: Hub, topic: string, group: string): Promise<WebSocket> {
  const ws = new WebSocket(hub.wsUrl, ['tributary.v1']);
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  ws.send(encodeCbor({ t: 'hello', id: 1, v: 1, client: 'bench-raw' }));
  ws.send(encodeCbor({ t: 'subscribe', id: 2, topic, group, from: 'latest' }));
  return ws;
}

async function drop(hub: Hub, quick: boolean): Promise<BenchResult[]> {
  const partitions = 8;
  const rounds = quick ? 2 : 5;
  await createTopic(hub, 'bench-drop', partitions);
  const members: Member[] = [];
  for (let i = 0; i < 3; i++) members.push(joinMember(hub, 'bench-drop', 'bench-drop', 1000 + i));
  const over: number[] = [];
  for (let r = 0; r < rounds; r++) {
    // The raw member never confirms a revocation: join it only once the others hold everything.
    await waitFor(() => allOwned(members, partitions), 30_000, 'the members to hold every partition', 5);
    const ws = await rawMember(hub, 'bench-drop', 'bench-drop');
    // The raw member holds its share once the others gave theirs up.
    await waitFor(
      () => members.reduce((n, m) => n + m.sub.assignment().length, 0) === partitions - 2,
      10_000,
      `the raw member to hold 2 partitions (round ${r}: ${JSON.stringify(members.map((m) => m.sub.assignment()))})`,
      5,
    );
    // Its session counts from its last frame: heartbeat just before the connection dies.
    ws.send(encodeCbor({ t: 'heartbeat', id: 3 + r, sub: 2 }));
    await sleep(20);
    const t = performance.now();
    ws.terminate();
    await waitFor(() => allOwned(members, partitions), SESSION_TIMEOUT_MS + 10_000, 'the dropped member’s partitions to move', 5);
    over.push(performance.now() - t - SESSION_TIMEOUT_MS);
  }
  await Promise.all(members.map((m) => m.client.close()));
  const s = [...over].sort((a, b) => a - b);
  const worst = s[s.length - 1];
  return [
    {
      scenario: 'groups-drop',
      system: 'hub',
      eventsPerSec: 0,
      p50Ms: Number((percentile(s, 0.5) + SESSION_TIMEOUT_MS).toFixed(0)),
      p99Ms: Number((worst + SESSION_TIMEOUT_MS).toFixed(0)),
      notes: `session timeout ${SESSION_TIMEOUT_MS} ms, ${rounds} drops: moved ${s.map((x) => `+${x.toFixed(0)}`).join(', ')} ms after it (goal ≤ +500 ms: ${worst <= 500 ? 'met' : 'missed'})`,
    },
  ];
}

export async function runGroupsBench(opts: { quick: boolean }): Promise<BenchResult[]> {
  const hub = await startHub({
    args: [
      '--groups-session-timeout-ms',
      String(SESSION_TIMEOUT_MS),
      '--groups-heartbeat-interval-ms',
      '1000',
      '--max-connections',
      '20000',
      '--connections-per-sec-per-address',
      '1000000',
      '--connections-burst-per-address',
      '1000000',
    ],
  });
  try {
    const only = process.env.BENCH_GROUPS_ONLY;
    const out: BenchResult[] = [];
    if (!only || only === 'delivery') out.push(...(await delivery(hub, opts.quick)));
    if (!only || only === 'rebalance') out.push(...(await rebalance(hub, opts.quick)));
    if (!only || only === 'drop') out.push(...(await drop(hub, opts.quick)));
    return out;
  } finally {
    await hub.stop();
    hub.cleanup();
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const results = await runGroupsBench({ quick: process.argv.includes('--quick') });
  for (const r of results) console.log(`${r.scenario} ${r.system}: ${r.eventsPerSec ? `${r.eventsPerSec.toLocaleString('en-US')} records/s` : `p50 ${r.p50Ms} ms, p99 ${r.p99Ms} ms`}  (${r.notes})`);
  process.exit(0);
}
