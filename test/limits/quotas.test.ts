/**
 * Quotas and connection limits (server/limits/): first the parts alone (token
 * bucket, connection counts, per-connection quota), then a hub with auth on
 * where each quota refuses with its own typed error (the connection stays
 * usable) and is counted in /metrics, and a throttled client does not slow
 * the others down.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ConnectionLimits, ConnectionQuota, TokenBucket } from '../../server/limits/index.ts';
import { adminToken, authedClient, createTopic, refusals, sleep, startAuthHub, token } from '../helpers/auth-hub.ts';
import type { Hub } from '../../harness/hub.ts';
import { waitFor } from '../../harness/wait.ts';
import { bytes, WsClient } from '../helpers/ws-client.ts';

describe('TokenBucket', () => {
  it('allows a burst, then refills at the rate and says how long to wait', () => {
    const b = new TokenBucket(100, 200); // 100/s, burst 200
    expect(b.take(150, 0)).toBe(0);
    expect(b.take(50, 0)).toBe(0);
    // empty: 10 tokens need 100 ms
    expect(b.take(10, 0)).toBe(100);
    expect(b.take(10, 50)).toBe(50);
    expect(b.take(10, 100)).toBe(0);
    // never refills beyond the burst
    expect(b.available(1_000_000)).toBe(200);
  });

  it('a refused take takes nothing', () => {
    const b = new TokenBucket(10, 10);
    expect(b.take(10, 0)).toBe(0);
    expect(b.take(5, 0)).toBe(500);
    expect(b.take(5, 0)).toBe(500);
    expect(b.take(5, 500)).toBe(0);
  });

  it('lets a request larger than the burst through from a full bucket, then makes the debt be paid', () => {
    const b = new TokenBucket(1000, 1000);
    expect(b.take(3000, 0)).toBe(0); // allowed, bucket at -2000
    expect(b.available(0)).toBe(-2000);
    expect(b.take(1, 0)).toBe(2001);
    expect(b.take(3000, 2999)).toBe(1); // needs the bucket full again (1000 tokens) at 3000 ms
    expect(b.take(3000, 3000)).toBe(0);
  });

  it('average rate holds under a steady stream of requests', () => {
    const b = new TokenBucket(1000, 100);
    let taken = 0;
    for (let t = 0; t <= 10_000; t++) if (b.take(10, t) === 0) taken += 10;
    // 10 s at 1000/s plus the initial burst
    expect(taken).toBeGreaterThanOrEqual(10_000);
    expect(taken).toBeLessThanOrEqual(10_100);
  });

  it('ignores a clock that steps backwards', () => {
    const b = new TokenBucket(10, 10);
    expect(b.take(10, 5_000)).toBe(0);
    expect(b.take(1, 1_000)).toBe(100);
    expect(b.take(1, 5_100)).toBe(0);
  });

  it('refuses nonsense settings', () => {
    expect(() => new TokenBucket(0, 10)).toThrow(RangeError);
    expect(() => new TokenBucket(10, Infinity)).toThrow(RangeError);
    expect(() => new TokenBucket(10, 10).take(-1, 0)).toThrow(RangeError);
  });
});

describe('ConnectionLimits', () => {
  it('refuses the connection over the total with a retriable TOO_MANY_CONNECTIONS', () => {
    const limits = new ConnectionLimits({ maxConnections: 2, maxConnectionsPerSubject: 10 });
    expect(limits.tryOpen(null)).toBeNull();
    expect(limits.tryOpen('alice')).toBeNull();
    const err = limits.tryOpen('bob');
    expect(err?.code).toBe('TOO_MANY_CONNECTIONS');
    expect(err?.retriable).toBe(true);
    expect(err?.status).toBe(429);
    expect(err?.message).toMatch(/limit of 2/);
    limits.close(null);
    expect(limits.tryOpen('bob')).toBeNull();
    expect(limits.open).toBe(2);
  });

  it('limits each subject on its own, and others are unaffected', () => {
    const limits = new ConnectionLimits({ maxConnections: 100, maxConnectionsPerSubject: 2 });
    expect(limits.tryOpen('alice')).toBeNull();
    expect(limits.tryOpen('alice')).toBeNull();
    expect(limits.tryOpen('alice')?.message).toMatch(/for this subject: its limit is 2/);
    expect(limits.tryOpen('bob')).toBeNull();
    expect(limits.openFor('alice')).toBe(2);
    expect(limits.open).toBe(3); // the refused one was not counted
    limits.close('alice');
    expect(limits.tryOpen('alice')).toBeNull();
  });

  it('counts a connection before it authenticates and attaches it to its subject after', () => {
    const limits = new ConnectionLimits({ maxConnections: 10, maxConnectionsPerSubject: 1 });
    expect(limits.tryOpen(null)).toBeNull();
    expect(limits.tryOpen(null)).toBeNull();
    expect(limits.tryAttach('alice')).toBeNull();
    expect(limits.tryAttach('alice')?.code).toBe('TOO_MANY_CONNECTIONS');
    // the refused one closes as unattached
    limits.close(null);
    limits.close('alice');
    expect(limits.open).toBe(0);
    expect(limits.openFor('alice')).toBe(0);
  });

  it('anonymous connections (subject null) count only toward the total', () => {
    const limits = new ConnectionLimits({ maxConnections: 5, maxConnectionsPerSubject: 1 });
    for (let i = 0; i < 5; i++) expect(limits.tryOpen(null)).toBeNull();
    expect(limits.tryOpen(null)?.code).toBe('TOO_MANY_CONNECTIONS');
  });

  it('a close without an open is a bug and says so', () => {
    const limits = new ConnectionLimits({ maxConnections: 5, maxConnectionsPerSubject: 1 });
    expect(() => limits.close(null)).toThrow(/without a matching open/);
    limits.tryOpen(null);
    expect(() => limits.close('ghost')).toThrow(/no open connection/);
  });
});

describe('ConnectionQuota', () => {
  const limits = {
    produceBytesPerSec: 1000,
    produceBytesBurst: 1000,
    produceEventsPerSec: 10,
    produceEventsBurst: 10,
    maxSubscriptionsPerConnection: 2,
    maxInFlightPerConnection: 2,
  };

  it('rate-limits produce by records and by bytes, charging nothing when refused', () => {
    const q = new ConnectionQuota(limits);
    expect(q.admitProduce(500, 5, 0)).toBeNull();
    const byRecords = q.admitProduce(10, 6, 0);
    expect(byRecords?.code).toBe('RATE_LIMITED');
    expect(byRecords?.details?.retryAfterMs).toBe(100);
    expect(byRecords?.message).toMatch(/10 records\/s/);
    const byBytes = q.admitProduce(600, 1, 0);
    expect(byBytes?.message).toMatch(/1000 bytes\/s/);
    expect(byBytes?.details?.retryAfterMs).toBe(100);
    // the refused requests took nothing: exactly 5 records and 500 bytes remain
    expect(q.admitProduce(500, 5, 0)).toBeNull();
    expect(q.admitProduce(1, 1, 0)?.code).toBe('RATE_LIMITED');
  });

  it('bounds requests in flight and subscriptions per connection', () => {
    const q = new ConnectionQuota(limits);
    expect(q.beginRequest()).toBeNull();
    expect(q.beginRequest()).toBeNull();
    expect(q.beginRequest()?.code).toBe('TOO_MANY_IN_FLIGHT');
    q.endRequest();
    expect(q.beginRequest()).toBeNull();
    expect(q.addSubscription()).toBeNull();
    expect(q.addSubscription()).toBeNull();
    expect(q.addSubscription()?.code).toBe('TOO_MANY_SUBSCRIPTIONS');
    q.removeSubscription();
    expect(q.subscriptions).toBe(1);
    q.removeSubscription();
    expect(() => q.removeSubscription()).toThrow(/without addSubscription/);
  });
});

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const FLOODER = path.join(ROOT, 'test/helpers/flooder.ts');
const hubs: Hub[] = [];
const clients: WsClient[] = [];

afterAll(async () => {
  await Promise.all(clients.map((c) => c.close()));
  for (const h of hubs) {
    await h.stop();
    h.cleanup();
  }
});

async function client(hub: Hub, subject: string): Promise<WsClient> {
  const c = await authedClient(hub, await token({ sub: subject }));
  clients.push(c);
  return c;
}

describe('per-connection quotas', () => {
  let hub: Hub;
  beforeAll(async () => {
    hub = await startAuthHub([
      '--topic-fsync',
      'never',
      // A small steady byte rate with a large burst: a light client never runs out, a flooding one does at once.
      '--produce-bytes-per-sec',
      '65536',
      '--produce-bytes-burst',
      String(8 * 1024 * 1024),
      '--produce-events-per-sec',
      '100000',
      '--produce-events-burst',
      '100000',
      '--max-subscriptions-per-connection',
      '2',
      '--max-in-flight-per-connection',
      '3',
      // A slow refill (1/s) so that a loaded machine's pause between two posts cannot refill the burst.
      '--http-produce-events-per-sec',
      '1',
      '--http-produce-events-burst',
      '10',
      '--idle-timeout-ms',
      '1500',
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
    const flood = spawn(process.execPath, ['--import', 'tsx', FLOODER, hub.wsUrl, await token({ sub: 'flooder' }), 'quota', String(8 * 1024), '5000', '1', '51'], { cwd: ROOT });
    let out = '';
    flood.stdout.on('data', (d) => (out += d));
    flood.stderr.on('data', (d) => (out += d));
    let done = false;
    // 'close' (after stdout ended), not 'exit': the report below is parsed from stdout.
    const exited = new Promise((r) => flood.once('close', r)).then(() => (done = true));
    // Until it is refused, or has exited (then its report below says how far it got).
    await waitFor(async () => done || (await refusals(hub, 'rate_limited')) > 0, 90_000, 'the flooder to be rate-limited');
    const throttled = await rate(1000);
    await exited;
    const report = JSON.parse(out) as { counts: Record<string, number>; retryAfterMs: number; elapsedMs: number };

    // How many it sends in its time depends on the machine (it goes on past 5 s until refused 51 times); past the
    // burst, refusals must be what it gets.
    expect(report.counts.RATE_LIMITED ?? 0).toBeGreaterThan(50);
    // The burst, plus 64 KiB/s (8 records/s) of refill over the time it ran, and slack.
    expect(report.counts.ack).toBeLessThanOrEqual(1024 + Math.ceil((8 * report.elapsedMs) / 1000) + 30);
    expect(report.retryAfterMs).toBeGreaterThan(0);
    // Generous: the flooder's own process competes for the CPU and a shared machine is noisy, but a hub that
    // stalled for the flooder would fall far below.
    expect(throttled).toBeGreaterThan(alone / 4);
  }, 150_000); // the flooder is a tsx process of its own: at a load average of 20 it took more than 30 s to start

  it('HTTP produce rate is per token subject: 429 with Retry-After; another subject is unaffected', async () => {
    const post = async (subject: string, n: number): Promise<Response> =>
      fetch(`${hub.url}/v1/topics/quota/records`, {
        method: 'POST',
        headers: { authorization: `Bearer ${await token({ sub: subject })}`, 'content-type': 'application/json' },
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
    await sleep(500); // proves a negative: the polite peer is still open a while after the silent one was closed
    await expect(polite.request({ t: 'ping' })).resolves.toMatchObject({ t: 'ok' });
    expect(await refusals(hub, 'idle_timeout')).toBeGreaterThanOrEqual(1);
  });
});

/** Open WebSocket connections, from the hub's gauge: a close counts once the hub has seen it. */
async function openConnections(hub: Hub): Promise<number> {
  const m = /^tributary_connections (\d+)/m.exec(await (await fetch(`${hub.url}/metrics`)).text());
  return m ? Number(m[1]) : -1;
}

describe('connection limits', () => {
  let hub: Hub;
  beforeAll(async () => {
    hub = await startAuthHub(['--max-connections', '4', '--max-connections-per-subject', '2']);
    hubs.push(hub);
  });
  // Each test closes what it opened and waits until the hub has counted the closes, so that each starts from none.
  const mine: WsClient[] = [];
  afterEach(async () => {
    await Promise.all(mine.splice(0).map((c) => c.close()));
    await waitFor(async () => (await openConnections(hub)) === 0, 10_000, 'the hub to count every close');
  });
  const own = (c: WsClient): WsClient => (mine.push(c), c);

  it('per subject: the third connection of a subject is closed with 4429 after hello; other subjects still connect', async () => {
    own(await authedClient(hub, await token({ sub: 'dup' })));
    own(await authedClient(hub, await token({ sub: 'dup' })));
    const third = own(await WsClient.connect(hub.wsUrl));
    await expect(third.hello(await token({ sub: 'dup' }))).rejects.toMatchObject({ code: 'TOO_MANY_CONNECTIONS' });
    const closed = await third.closed;
    expect(closed.code).toBe(4429);
    expect(closed.reason).toMatch(/^TOO_MANY_CONNECTIONS: too many connections for this subject/);
    own(await authedClient(hub, await token({ sub: 'someone-else' })));
  });

  it('in total: past maxConnections the upgrade is closed with 4429; a closed connection frees its slot', async () => {
    const before = await refusals(hub, 'too_many_connections');
    for (const subject of ['first', 'second', 'third']) own(await authedClient(hub, await token({ sub: subject })));
    const fourth = own(await authedClient(hub, await token({ sub: 'fourth' })));
    const fifth = own(await WsClient.connect(hub.wsUrl));
    const closed = await fifth.closed;
    expect(closed.code).toBe(4429);
    expect(closed.reason).toMatch(/^TOO_MANY_CONNECTIONS: too many connections: the hub holds its limit of 4/);
    await fourth.close();
    await waitFor(async () => (await openConnections(hub)) === 3, 10_000, 'the hub to count the fourth connection closed');
    const again = own(await authedClient(hub, await adminToken()));
    await expect(again.request({ t: 'ping' })).resolves.toMatchObject({ t: 'ok' });
    expect(await refusals(hub, 'too_many_connections')).toBe(before + 1);
  });
});
