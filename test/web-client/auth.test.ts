/**
 * The web client (Node, over ws) against a real hub with auth on: in-band
 * refresh past the first token's expiry on one connection, a fresh token on
 * reconnect, a bad token surfaced as an error with bounded retries, events
 * for a topic outside the claims failing for good (FORBIDDEN) while others
 * drain, and an outbox whose events never leave under another subject.
 */
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDir, type Hub } from '../../harness/hub.ts';
import { startTcpProxy, type TcpProxy } from '../../harness/tcp-proxy.ts';
import { adminToken, createTopic, recordCount, sleep, startAuthHub, token } from '../helpers/auth-hub.ts';
import { ClientError, createClient, type Client, type ClientOptions, type ConnectionState } from '../../web-client/node.ts';
import { waitFor } from '../../harness/wait.ts';

let hub: Hub;
let proxy: TcpProxy;
const clients: Client[] = [];
const client = (opts: Partial<ClientOptions>): Client => {
  const c = createClient({ url: hub.wsUrl, outbox: 'memory', name: `auth-${Math.random()}`, backoffInitialMs: 20, backoffMaxMs: 200, ...opts });
  clients.push(c);
  return c;
};

/** WebSocket connections the hub has accepted so far (its own counter). */
async function connectionsAccepted(): Promise<number> {
  const text = await (await fetch(`${hub.url}/metrics`)).text();
  const m = /^tributary_connections_total (\d+)/m.exec(text);
  return m ? Number(m[1]) : 0;
}

const until = waitFor;

function watch(c: Client): { states: ConnectionState[]; errors: Error[] } {
  const seen = { states: [] as ConnectionState[], errors: [] as Error[] };
  c.on('state', (s) => seen.states.push(s));
  c.on('error', (e) => seen.errors.push(e));
  return seen;
}

beforeAll(async () => {
  hub = await startAuthHub();
  proxy = await startTcpProxy(hub.port);
  for (const t of ['feed', 'r1', 'r2', 'allowed', 'secret', 'outboxed', 'b-own', 'bad']) await createTopic(hub, t);
});
afterAll(async () => {
  await Promise.all(clients.map((c) => c.close().catch(() => undefined)));
  await proxy?.close();
  await hub?.stop();
  hub?.cleanup();
});

describe('web client with auth on (Node, real hub)', () => {
  it('a token function is refreshed in band: records and acks keep flowing past the first expiry on one connection', async () => {
    let calls = 0;
    const firstExpiry = Date.now() + 3000;
    const tok = () => {
      calls++;
      return token({ sub: 'streamer', tributary: { produce: ['feed'], consume: ['feed'] }, expInSec: 3 });
    };
    const c = client({ token: tok });
    const seen = watch(c);
    const got: number[] = [];
    c.subscribe('feed', { from: 'earliest' }, async (r) => void got.push((r.value as { n: number }).n));
    let acked = 0;
    c.on('ack', (a) => (acked += a.records.length));
    await until(() => c.state === 'open', 5000, 'open');
    const opened = await connectionsAccepted();

    // Produce every 100 ms until well past the first token's expiry (3 s, the hub's tolerance is 0).
    let n = 0;
    while (Date.now() < firstExpiry + 2500) {
      await c.send('feed', { value: { n: n++ } });
      await sleep(100); // paces the producer across the expiry (not a wait)
    }
    await c.flush();
    await until(() => got.length === n, 3000, 'every record back on the subscription');

    expect(acked).toBe(n);
    expect(got).toEqual(Array.from({ length: n }, (_, i) => i));
    // Never left 'open', no new WebSocket, no error; the token function was called again (refresh), but not in a storm.
    expect(seen.states.slice(seen.states.indexOf('open'))).toEqual(['open']);
    expect(await connectionsAccepted()).toBe(opened);
    expect(seen.errors).toEqual([]);
    expect(calls).toBeGreaterThanOrEqual(3);
    expect(calls).toBeLessThanOrEqual(12);
  }, 15_000);

  it('on reconnect the token function is called again and the fresh token is the one used', async () => {
    // No exp: no in-band refresh, so only a reconnect can bring the second token (which alone allows r2).
    let calls = 0;
    const tok = () => token({ sub: 'roamer', tributary: { produce: ++calls === 1 ? ['r1'] : ['r1', 'r2'] } });
    const c = client({ token: tok, url: proxy.wsUrl });
    const seen = watch(c);
    await c.send('r1', { value: { n: 0 } });
    await c.flush();
    expect(calls).toBe(1);

    proxy.cutAll();
    await until(() => seen.states.filter((s) => s === 'open').length === 2, 5000, 'reconnected');
    expect(calls).toBe(2);
    await c.send('r2', { value: { n: 1 } });
    await c.flush();
    expect(await c.failed()).toEqual([]);
    expect(await recordCount(hub, 'r2')).toBe(1);
    expect(seen.errors).toEqual([]);
  });

  it('a token signed with the wrong key: an AUTH_FAILED error naming TOKEN_INVALID / 4401, a bounded number of attempts, then unauthorized', async () => {
    const before = await connectionsAccepted();
    let calls = 0;
    const wrongKey = () => (calls++, token({ sub: 'mallory', secret: 'not-the-hubs-secret-not-the-hubs-secret' }));
    const fn = client({ token: wrongKey });
    const fnSeen = watch(fn);
    const fixed = client({ token: await token({ sub: 'mallory', secret: 'not-the-hubs-secret-not-the-hubs-secret' }) });
    const fixedSeen = watch(fixed);
    await fn.send('bad', { value: 1 });
    await until(() => fn.state === 'unauthorized' && fixed.state === 'unauthorized', 5000, 'unauthorized');
    await sleep(2000); // proves a negative: time enough for a retry loop to show

    // A token function is tried 3 times in a row (the default maxAuthFailures), a fixed token once.
    expect(calls).toBe(3);
    expect(await connectionsAccepted()).toBe(before + 4);
    expect(fnSeen.errors).toHaveLength(3);
    expect(fixedSeen.errors).toHaveLength(1);
    for (const e of [...fnSeen.errors, ...fixedSeen.errors]) {
      expect(e).toBeInstanceOf(ClientError);
      expect(e).toMatchObject({ code: 'AUTH_FAILED', details: { code: 'TOKEN_INVALID' } });
      expect(e.message).toContain('TOKEN_INVALID');
    }
    await expect(fn.flush()).rejects.toMatchObject({ code: 'AUTH_FAILED' });
    expect(await fn.pending()).toBe(1);
    expect(await recordCount(hub, 'bad')).toBe(0);
  });

  it('events for a topic outside the claims fail for good with FORBIDDEN; nothing is appended; other topics drain', async () => {
    const c = client({ token: await token({ sub: 'narrow', tributary: { produce: ['allowed'] } }) });
    const seen = watch(c);
    for (let n = 0; n < 3; n++) await c.send('secret', { value: { n } });
    for (let n = 0; n < 5; n++) await c.send('allowed', { value: { n } });
    await c.flush();

    const failed = await c.failed();
    expect(failed.map((f) => [f.topic, f.code])).toEqual([
      ['secret', 'FORBIDDEN'],
      ['secret', 'FORBIDDEN'],
      ['secret', 'FORBIDDEN'],
    ]);
    expect(seen.errors.map((e) => (e as { code?: string }).code)).toEqual(['FORBIDDEN']);
    expect(await c.pending()).toBe(0);
    expect(await recordCount(hub, 'secret')).toBe(0);
    expect(await recordCount(hub, 'allowed')).toBe(5);
    expect(c.state).toBe('open'); // a refusal is not an auth failure: the connection stays
  });

  it('an outbox belongs to one subject: B never sends what A queued; flush rejects SUBJECT_MISMATCH; A sends them later', async () => {
    const file = path.join(tempDir('tributary-auth-outbox-'), 'outbox.journal');
    const tokA = await token({ sub: 'device-a', tributary: { produce: ['outboxed'] } });
    const tokB = () => token({ sub: 'device-b', tributary: { produce: ['*'] } });

    const a1 = client({ token: tokA, outbox: { file }, url: 'ws://127.0.0.1:1/v1/ws' });
    for (let n = 0; n < 4; n++) await a1.send('outboxed', { value: { n } });
    expect(await a1.pending()).toBe(4);
    await a1.close();

    const b1 = client({ token: tokB, outbox: { file } });
    const bSeen = watch(b1);
    await until(() => bSeen.errors.some((e) => (e as ClientError).code === 'SUBJECT_MISMATCH'), 5000, 'SUBJECT_MISMATCH error');
    // B's events of another topic drain; its event of A's topic waits behind A's (its sequence follows theirs).
    await b1.send('b-own', { value: { n: 0 } });
    await b1.send('outboxed', { value: { n: 4 } });
    // A flush covering A's events, called after the session met them, rejects instead of hanging.
    await expect(b1.flush()).rejects.toMatchObject({ code: 'SUBJECT_MISMATCH' });
    await until(async () => (await recordCount(hub, 'b-own')) === 1, 3000, "B's own topic drained");
    await sleep(300); // proves a negative: the other subject's events stay in the outbox
    expect(await b1.pending()).toBe(5);
    expect(await recordCount(hub, 'outboxed')).toBe(0);
    await b1.close();

    const a2 = client({ token: tokA, outbox: { file } });
    await until(async () => (await a2.pending()) === 1, 5000, "A's events drained");
    expect(await recordCount(hub, 'outboxed')).toBe(4);
    await a2.close();

    const b2 = client({ token: tokB, outbox: { file } });
    await b2.flush();
    expect(await b2.pending()).toBe(0);
    expect(await b2.failed()).toEqual([]);
    // Every event once, in send order (the topic has one partition).
    const res = await fetch(`${hub.url}/v1/topics/outboxed/partitions/0/records?offset=0&limit=100`, { headers: { authorization: `Bearer ${await adminToken()}` } });
    const { records } = (await res.json()) as { records: Array<{ value: { n: number } }> };
    expect(records.map((r) => r.value.n)).toEqual([0, 1, 2, 3, 4]);
  });
});
