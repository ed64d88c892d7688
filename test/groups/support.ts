/**
 * Helpers for consumer-group tests: a hub with short group timeouts, web
 * client members that record what they handled, and the group's view over
 * HTTP.
 */
import { startHub, type Hub, type HubOptions } from '../../harness/hub.ts';
import { createClient, type Client, type ClientOptions, type ConsumedRecord, type SubscribeOptions, type SubscriptionHandle } from '../../web-client/node.ts';

/** Short enough for tests to watch sessions expire, with headroom for a loaded machine. */
export const SESSION_TIMEOUT_MS = 2000;
export const HEARTBEAT_INTERVAL_MS = 300;

export function startGroupHub(opts: HubOptions = {}): Promise<Hub> {
  return startHub({
    ...opts,
    args: ['--groups-session-timeout-ms', String(SESSION_TIMEOUT_MS), '--groups-heartbeat-interval-ms', String(HEARTBEAT_INTERVAL_MS), ...(opts.args ?? [])],
  });
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export { waitFor } from '../../harness/wait.ts';

export async function createTopic(url: string, name: string, partitions: number): Promise<void> {
  const res = await fetch(`${url}/v1/topics`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name, partitions }) });
  if (res.status !== 201) throw new Error(`create ${name}: ${res.status} ${await res.text()}`);
}

/** Produces `count` records spread over every partition (value `{ n }`), through the web client. */
export async function produce(url: string, topic: string, partitions: number, from: number, count: number): Promise<void> {
  const c = createClient({ url, outbox: 'memory', name: `producer-${Math.random()}` });
  for (let n = from; n < from + count; n++) await c.send(topic, { partition: n % partitions, value: { n } });
  await c.flush();
  await c.close();
}

export interface GroupView {
  group: string;
  state: string;
  generation: number;
  members: Array<{ member: string; client: string; topic: string; partitions: number[] }>;
  offsets: Array<{ topic: string; partition: number; committed: number | null; highWatermark: number; lag: number }>;
}

export async function groupView(url: string, group: string): Promise<GroupView | null> {
  const res = await fetch(`${url}/v1/groups/${group}`);
  if (res.status === 404) return null;
  if (res.status !== 200) throw new Error(`GET group ${group}: ${res.status} ${await res.text()}`);
  return (await res.json()) as GroupView;
}

/** One member: a client, its subscription, and every record its handler saw. */
export interface TestMember {
  name: string;
  client: Client;
  sub: SubscriptionHandle;
  seen: ConsumedRecord[];
  errors: Error[];
  /** While set, the handler waits on it (to hold a member still). */
  gate: Promise<void> | null;
  /** The record whose handler is running now (waiting on the gate, say). */
  inHand: ConsumedRecord | null;
}

export function member(url: string, name: string, topic: string, group: string, opts: Partial<SubscribeOptions> = {}, clientOpts: Partial<ClientOptions> = {}): TestMember {
  const client = createClient({ url, outbox: 'memory', name, backoffInitialMs: 20, backoffMaxMs: 200, ...clientOpts });
  const m: TestMember = { name, client, sub: undefined as unknown as SubscriptionHandle, seen: [], errors: [], gate: null, inHand: null };
  client.on('error', (e) => m.errors.push(e));
  m.sub = client.subscribe(topic, { group, from: 'earliest', ...opts }, async (r) => {
    m.inHand = r;
    if (m.gate) await m.gate;
    m.inHand = null;
    m.seen.push(r);
  });
  return m;
}

/** Every (partition, offset) seen, as "p:o" strings. */
export const keysOf = (records: ConsumedRecord[]): string[] => records.map((r) => `${r.partition}:${r.offset}`);
