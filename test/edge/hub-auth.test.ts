/**
 * The edge worker in front of a hub with authentication on: it forwards with
 * its own HUB_TOKEN, and what the hub says about that token reaches devices
 * as retriable worker errors, never as the device's fault; the hub's rate
 * limit per token subject reaches them with Retry-After.
 */
import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHub, type Hub } from '../../harness/hub.ts';
import { buildWorker, DEVICE_SECRET, deviceToken, ingest, removeBundle, startEdge, type Edge } from '../../harness/edge.ts';

const HUB_SECRET = 'hub-secret-for-the-edge-auth-test-0123456789';
let hub: Hub;
let bundle: string;
const edges: Edge[] = [];

async function hubToken(sub: string, tributary?: Record<string, unknown>): Promise<string> {
  const jwt = new SignJWT(tributary ? { tributary } : {}).setProtectedHeader({ alg: 'HS256' }).setSubject(sub).setIssuedAt().setExpirationTime('1h');
  return jwt.sign(new TextEncoder().encode(HUB_SECRET));
}

async function edgeWith(hubTokenValue: string | undefined): Promise<Edge> {
  const bindings: Record<string, string> = { HUB_URL: hub.url, DEVICE_JWT_SECRET: DEVICE_SECRET, ALLOWED_TOPICS: 'sensors.*' };
  if (hubTokenValue !== undefined) bindings.HUB_TOKEN = hubTokenValue;
  const e = await startEdge(bundle, bindings);
  edges.push(e);
  return e;
}

async function count(topic: string, admin: string): Promise<number> {
  const res = await fetch(`${hub.url}/v1/topics/${topic}/partitions/0/records?offset=0&limit=1000`, { headers: { authorization: `Bearer ${admin}` } });
  expect(res.status).toBe(200);
  return ((await res.json()) as { records: unknown[] }).records.length;
}

let admin: string;

beforeAll(async () => {
  [hub, bundle] = await Promise.all([
    startHub({
      args: ['--allowed-origins', 'http://localhost', '--http-produce-events-per-sec', '20', '--http-produce-events-burst', '20'],
      env: { TRIBUTARY_AUTH_SECRET: HUB_SECRET },
    }),
    buildWorker(),
  ]);
  admin = await hubToken('ops', { admin: true, consume: ['*'] });
  for (const name of ['sensors.ok', 'sensors.denied', 'sensors.none', 'sensors.rate']) {
    const res = await fetch(`${hub.url}/v1/topics`, { method: 'POST', headers: { authorization: `Bearer ${admin}` }, body: JSON.stringify({ name, partitions: 1 }) });
    expect(res.status).toBe(201);
  }
});

afterAll(async () => {
  await Promise.all(edges.map((e) => e.dispose()));
  await hub?.stop();
  hub?.cleanup();
  if (bundle) removeBundle(bundle);
});

describe('edge worker → hub with auth on', () => {
  it('forwards with its HUB_TOKEN: readings land', async () => {
    const edge = await edgeWith(await hubToken('edge-1', { produce: ['sensors.*'] }));
    const device = await deviceToken({ sub: 'd-ok' });
    const res = await ingest(edge.url, 'sensors.ok', [{ t: 1 }, { t: 2 }], { token: device, sequence: 0 });
    expect(res.status).toBe(200);
    expect(await count('sensors.ok', admin)).toBe(2);
  });

  it('a HUB_TOKEN the hub refuses (no token, or no permission) is a retriable 5xx for the device, and nothing is appended', async () => {
    const device = await deviceToken({ sub: 'd-denied' });
    const denied = await edgeWith(await hubToken('edge-2', { produce: ['elsewhere'] }));
    const r1 = await ingest(denied.url, 'sensors.denied', { t: 1 }, { token: device, sequence: 0 });
    expect(r1.status).toBeGreaterThanOrEqual(500);
    expect(r1.body.error.retriable).toBe(true);
    const none = await edgeWith(undefined);
    const r2 = await ingest(none.url, 'sensors.none', { t: 1 }, { token: device, sequence: 0 });
    expect(r2.status).toBeGreaterThanOrEqual(500);
    expect(r2.body.error.retriable).toBe(true);
    expect(await count('sensors.denied', admin)).toBe(0);
    expect(await count('sensors.none', admin)).toBe(0);
  });

  it("the hub's rate limit for the worker's subject reaches devices as 429 with Retry-After", async () => {
    const edge = await edgeWith(await hubToken('edge-3', { produce: ['sensors.*'] }));
    const device = await deviceToken({ sub: 'd-rate' });
    const statuses: number[] = [];
    let limited: Awaited<ReturnType<typeof ingest>> | undefined;
    const started = Date.now();
    for (let i = 0; i < 10 && !limited; i++) {
      const res = await ingest(
        edge.url,
        'sensors.rate',
        Array.from({ length: 5 }, (_, k) => ({ i, k })),
        { token: device, sequence: i * 5 },
      );
      statuses.push(res.status);
      if (res.status === 429) limited = res;
    }
    expect(statuses.slice(0, 4)).toEqual([200, 200, 200, 200]);
    expect(limited?.body.error).toMatchObject({ code: 'RATE_LIMITED', retriable: true });
    expect(Number(limited?.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    // What was answered 200 is stored, what was refused is not: the burst of 20 on a quiet machine, more when a
    // slow run let the bucket refill (20 events a second) before the limit showed, one request of 5 at a time.
    const accepted = statuses.filter((s) => s === 200).length;
    const refilled = Math.ceil((20 * (Date.now() - started)) / 1000 / 5) * 5;
    expect(accepted * 5).toBeLessThanOrEqual(20 + refilled);
    expect(await count('sensors.rate', admin)).toBe(accepted * 5);
  });
});
