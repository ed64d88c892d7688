/**
 * Quotas with auth on: each one refuses with its own typed error (the
 * connection stays usable) and is counted in /metrics; and a client being
 * throttled does not slow the others down.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Hub } from '../helpers/hub.ts';
import { bytes, WsClient } from '../helpers/ws-client.ts';
import { adminToken, authedClient, createTopic, refusals, sleep, startAuthHub, token } from './support.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const FLOODER = path.join(ROOT, 'test/security/flooder.ts');
const hubs: Hub[] = [];
const clients: WsClient[] = [];

afterAll(async () => {
  await Promise.all(clients.map((c) => c.close()));
  for (const h of hubs) {
    await h.stop();
    h.cleanup();
  }
});

async function client(hub: Hub, sub: string): Promise<WsClient> {
  const c = await authedClient(hub, await token({ sub }));
  clients.push(c);
  return c;
}

describe('per-connection quotas', () => {
  let hub: Hub;
  beforeAll(async () => {
    hub = await startAuthHub([
      '--topic-fsync', 'never',
      // A small steady byte rate with a large burst: a light client never runs out, a flooding one does at once.
      '--produce-bytes-per-sec', '65536', '--produce-bytes-burst', String(8 * 1024 * 1024),
      '--produce-events-per-sec', '100000', '--produce-events-burst', '100000',
      '--max-subscriptions-per-connection', '2', '--max-in-flight-per-connection', '3',
      '--http-produce-events-per-sec', '10', '--http-produce-events-burst', '10',
      '--idle-timeout-ms', '1500',
    ]);
    hubs.push(hub);
    await createTopic(hub, 'quota');
  });

  it('subscriptions: past the limit → TOO_MANY_SUBSCRIPTIONS; unsubscribing frees a slot', async () => {
    const c = await client(hub, 'subscriber');
    const a = await c.subscribe('quota', { from: 'latest' });
    await c.subscribe('quota', { from: 'latest' });
    await expect(c.subscribe('quota', { from: 'latest' })).rejects.toMatchObject({ code: 'TOO_MANY_SUBSCRIPTIONS' });
    await c.unsubscribe(a.sub);
    await expect(c.subscribe('quota', { from: 'latest' })).resolves.toMatchObject({ t: 'ok' });
    expect(await refusals(hub, 'too_many_subscriptions')).toBe(1);
  });

  it('in flight: past the limit → TOO_MANY_IN_FLIGHT (retriable); the connection stays usable', async () => {
    const c = await client(hub, 'pipeliner');
    const results = await Promise.allSettled(Array.from({ length: 10 }, (_, i) => c.produce('quota', [{ v: bytes(`r${i}`) }])));
    const refused = results.filter((r) => r.status === 'rejected');
    expect(refused.length).toBeGreaterThan(0);
    for (const r of refused) expect((r as PromiseRejectedResult).reason).toMatchObject({ code: 'TOO_MANY_IN_FLIGHT', retriable: true });
    await expect(c.produce('quota', [{ v: bytes('after') }])).resolves.toMatchObject({ t: 'ack' });
    expect(await refusals(hub, 'too_many_in_flight')).toBeGreaterThan(0);
  });

  it('produce rate: RATE_LIMITED with retryAfterMs, while another client keeps its full speed', async () => {
    const measured = await client(hub, 'steady');
    const rate = async (ms: number): Promise<number> => {
      const end = Date.now() + ms;
      let n = 0;
      while (Date.now() < end) {
        await measured.produce('quota', [{ v: bytes('tick') }]);
        n++;
      }
      return (n * 1000) / ms;
    };
    await rate(200); // warm up
    const alone = await rate(1000);

    // The flooder, in its own process, sends 8 KiB records without end, ignoring retryAfterMs: its 8 MiB burst
    // is gone after 1024 of them and nearly every later one is refused.
    const flood = spawn(process.execPath, ['--import', 'tsx', FLOODER, hub.wsUrl, await token({ sub: 'flooder' }), 'quota', String(8 * 1024), '2500', '1'], { cwd: ROOT });
    let out = '';
    flood.stdout.on('data', (d) => (out += d));
    flood.stderr.on('data', (d) => (out += d));
    const exited = new Promise((r) => flood.once('exit', r));
    const deadline = Date.now() + 10_000;
    while ((await refusals(hub, 'rate_limited')) === 0 && Date.now() < deadline) await sleep(50);
    const throttled = await rate(1000);
    await exited;
    const report = JSON.parse(out) as { counts: Record<string, number>; retryAfterMs: number };

    // How many it sends in its time depends on the machine; past the burst, refusals must be what it gets.
    expect(report.counts.RATE_LIMITED ?? 0).toBeGreaterThan(50);
    expect(report.counts.ack).toBeLessThanOrEqual(1024 + 30); // the burst, plus 64 KiB/s of refill
    expect(report.retryAfterMs).toBeGreaterThan(0);
    // Generous: the flooder's own process competes for the CPU and a shared machine is noisy, but a hub that
    // stalled for the flooder would fall far below.
    expect(throttled).toBeGreaterThan(alone / 4);
  });

  it('HTTP produce rate is per token subject: 429 with Retry-After; another subject is unaffected', async () => {
    const post = async (sub: string, n: number): Promise<Response> =>
      fetch(`${hub.url}/v1/topics/quota/records`, {
        method: 'POST',
        headers: { authorization: `Bearer ${await token({ sub })}`, 'content-type': 'application/json' },
        body: JSON.stringify({ records: Array.from({ length: n }, (_, i) => ({ value: i })) }),
      });
    expect((await post('edge-worker', 10)).status).toBe(200);
    // A new token of the same subject shares the subject's bucket.
    const limited = await post('edge-worker', 1);
    expect(limited.status).toBe(429);
    expect(Number(limited.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(((await limited.json()) as { error: { code: string; retryAfterMs: number } }).error).toMatchObject({ code: 'RATE_LIMITED', retryAfterMs: expect.any(Number) });
    expect((await post('other-worker', 1)).status).toBe(200);
  });

  it('idle timeout: a peer that answers no pings is closed with 4408 IDLE_TIMEOUT; one that pongs stays', async () => {
    const jwt = await token({ sub: 'idler' });
    const silent = await WsClient.connect(hub.wsUrl, { options: { autoPong: false } });
    const polite = await WsClient.connect(hub.wsUrl);
    clients.push(silent, polite);
    await silent.hello(jwt);
    await polite.hello(jwt);
    const closed = await silent.closed;
    expect(closed.code).toBe(4408);
    expect(closed.reason).toMatch(/^IDLE_TIMEOUT: /);
    await sleep(500);
    await expect(polite.request({ t: 'ping' })).resolves.toMatchObject({ t: 'ok' });
    expect(await refusals(hub, 'idle_timeout')).toBeGreaterThanOrEqual(1);
  });
});

describe('connection limits', () => {
  let hub: Hub;
  beforeAll(async () => {
    hub = await startAuthHub(['--max-connections', '4', '--max-connections-per-subject', '2']);
    hubs.push(hub);
  });

  it('per subject: the third connection of a subject is closed with 4429 after hello; other subjects still connect', async () => {
    await client(hub, 'dup');
    await client(hub, 'dup');
    const third = await WsClient.connect(hub.wsUrl);
    clients.push(third);
    await expect(third.hello(await token({ sub: 'dup' }))).rejects.toMatchObject({ code: 'TOO_MANY_CONNECTIONS' });
    const closed = await third.closed;
    expect(closed.code).toBe(4429);
    expect(closed.reason).toMatch(/^TOO_MANY_CONNECTIONS: too many connections for this subject/);
    await client(hub, 'someone-else');
  });

  it('in total: past maxConnections the upgrade is closed with 4429; a closed connection frees its slot', async () => {
    await sleep(100); // the refused third connection's close has been counted
    const fourth = await client(hub, 'fourth');
    const fifth = await WsClient.connect(hub.wsUrl);
    const closed = await fifth.closed;
    expect(closed.code).toBe(4429);
    expect(closed.reason).toMatch(/^TOO_MANY_CONNECTIONS: too many connections: the hub holds its limit of 4/);
    await fourth.close();
    await sleep(100);
    const again = await authedClient(hub, await adminToken());
    clients.push(again);
    await expect(again.request({ t: 'ping' })).resolves.toMatchObject({ t: 'ok' });
    expect(await refusals(hub, 'too_many_connections')).toBe(2);
  });
});
