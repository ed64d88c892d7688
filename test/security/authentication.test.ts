/**
 * A hub with auth on, against the tokens an attacker or a misconfigured
 * client would send: each is refused (401 with a JSON body on HTTP, close
 * 4401 with a reason on WebSocket); a valid token is held to its claims
 * (403 / FORBIDDEN, nothing appended, the connection stays usable); origins
 * outside the allow-list are refused; the token may ride in
 * Sec-WebSocket-Protocol; a connection that never authenticates is closed
 * with 4408. Each test sets up and measures what it needs (counters as a
 * before/after difference), so any one of them may run alone.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Hub } from '../../harness/hub.ts';
import { bytes, UpgradeRefused, WsClient } from '../helpers/ws-client.ts';
import { APP_ORIGIN, adminToken, authedClient, createTopic, recordCount, refusals, startAuthHub, token, unsignedToken } from '../helpers/auth-hub.ts';

let hub: Hub;
const clients: WsClient[] = [];

beforeAll(async () => {
  hub = await startAuthHub(['--auth-timeout-ms', '600']);
  await createTopic(hub, 'orders');
  await createTopic(hub, 'payroll');
  await createTopic(hub, 'guarded');
});

afterAll(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await hub.stop();
  hub.cleanup();
});

async function connect(opts: Parameters<typeof WsClient.connect>[1] = {}): Promise<WsClient> {
  const c = await WsClient.connect(hub.wsUrl, opts);
  clients.push(c);
  return c;
}

const badTokens: Array<[string, () => Promise<string | undefined>, string, RegExp]> = [
  ['no token', async () => undefined, 'UNAUTHENTICATED', /authentication required/],
  ['a malformed token', async () => 'not.a.jwt!', 'TOKEN_INVALID', /token/],
  ['a token signed with the wrong key', () => token({ secret: 'some-other-secret-that-is-long-enough-too' }), 'TOKEN_INVALID', /signature/],
  ['an alg: none token', async () => unsignedToken(), 'TOKEN_INVALID', /algorithm "none" is not allowed/],
  ['an expired token', () => token({ expInSec: -60 }), 'TOKEN_EXPIRED', /expired/],
  ['a token for another audience', () => token({ audience: 'billing' }), 'TOKEN_INVALID', /"aud" claim/],
];

describe('bad tokens are refused', () => {
  it.each(badTokens)('HTTP: %s → 401 with a JSON error body, counted, nothing appended', async (_name, make, code, message) => {
    const jwt = await make();
    const before = await refusals(hub, code.toLowerCase());
    const res = await fetch(`${hub.url}/v1/topics/guarded/records`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(jwt === undefined ? {} : { authorization: `Bearer ${jwt}` }) },
      body: JSON.stringify({ records: [{ value: 'x' }] }),
    });
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toMatch(/^Bearer/);
    const body = (await res.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe(code);
    expect(body.error.message).toMatch(message);
    if (jwt) expect(body.error.message).not.toContain(jwt);
    expect(await refusals(hub, code.toLowerCase())).toBeGreaterThan(before);
    expect(await recordCount(hub, 'guarded')).toBe(0);
  });

  it.each(badTokens)('WebSocket: %s in hello → close 4401 with the reason, counted', async (_name, make, code, message) => {
    const jwt = await make();
    const before = await refusals(hub, code.toLowerCase());
    const c = await connect();
    await expect(c.hello(jwt)).rejects.toMatchObject({ code });
    const closed = await c.closed;
    expect(closed.code).toBe(4401);
    expect(closed.reason.startsWith(`${code}: `)).toBe(true);
    expect(closed.reason).toMatch(message);
    expect(await refusals(hub, code.toLowerCase())).toBeGreaterThan(before);
  });

  it('a token in the URL is refused, not silently ignored', async () => {
    const res = await fetch(`${hub.url}/v1/topics?access_token=${await adminToken()}`);
    expect(res.status).toBe(400);
    const refused = await WsClient.connect(`${hub.wsUrl}?token=abc`).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(UpgradeRefused);
    expect((refused as UpgradeRefused).status).toBe(400);
  });
});

describe('a valid token is held to its claims', () => {
  it('producing outside its claims → FORBIDDEN error frame, nothing appended, connection usable', async () => {
    const c = await authedClient(hub, await token({ sub: 'orders-svc', tributary: { produce: ['orders'], consume: ['orders'] } }));
    clients.push(c);
    const ordersBefore = await recordCount(hub, 'orders');
    await expect(c.produce('payroll', [{ v: bytes('raise') }])).rejects.toMatchObject({ code: 'FORBIDDEN' });
    await expect(c.subscribe('payroll')).rejects.toMatchObject({ code: 'FORBIDDEN' });
    await expect(c.request({ t: 'metadata', topic: 'payroll' })).rejects.toMatchObject({ code: 'FORBIDDEN' });
    await expect(c.produce('orders', [{ v: bytes('fine') }])).resolves.toMatchObject({ t: 'ack' });
    expect(await recordCount(hub, 'payroll')).toBe(0);
    expect(await recordCount(hub, 'orders')).toBe(ordersBefore + 1);
  });

  it('HTTP: produce outside the claims → 403, nothing appended; admin routes need admin', async () => {
    const jwt = await token({ sub: 'orders-svc', tributary: { produce: ['orders'], consume: ['orders'] } });
    const auth = { authorization: `Bearer ${jwt}`, 'content-type': 'application/json' };
    const denied = await fetch(`${hub.url}/v1/topics/payroll/records`, { method: 'POST', headers: auth, body: JSON.stringify({ records: [{ value: 1 }] }) });
    expect(denied.status).toBe(403);
    expect(((await denied.json()) as { error: { code: string } }).error.code).toBe('FORBIDDEN');
    expect(await recordCount(hub, 'payroll')).toBe(0);
    expect((await fetch(`${hub.url}/v1/topics/payroll/partitions/0/records`, { headers: auth })).status).toBe(403);
    expect((await fetch(`${hub.url}/v1/topics`, { method: 'POST', headers: auth, body: JSON.stringify({ name: 'mine' }) })).status).toBe(403);
    expect((await fetch(`${hub.url}/v1/topics/orders`, { method: 'DELETE', headers: auth })).status).toBe(403);
    // The list shows only what the token may use.
    const list = (await (await fetch(`${hub.url}/v1/topics`, { headers: auth })).json()) as { topics: Array<{ name: string }> };
    expect(list.topics.map((t) => t.name)).toEqual(['orders']);
    // Health stays open without a token.
    expect((await fetch(`${hub.url}/healthz`)).status).toBe(200);
    expect((await fetch(`${hub.url}/v1/topics`)).status).toBe(401);
  });

  it('a valid token without the tributary claim is authenticated but may do nothing: 403, not 401', async () => {
    const jwt = await token({ sub: 'stranger', tributary: null });
    const res = await fetch(`${hub.url}/v1/topics/orders/records`, {
      method: 'POST',
      headers: { authorization: `Bearer ${jwt}`, 'content-type': 'application/json' },
      body: JSON.stringify({ records: [{ value: 1 }] }),
    });
    expect(res.status).toBe(403);
    const c = await authedClient(hub, jwt);
    clients.push(c);
    await expect(c.produce('orders', [{ v: bytes('x') }])).rejects.toMatchObject({ code: 'FORBIDDEN' });
    await expect(c.request({ t: 'ping' })).resolves.toMatchObject({ t: 'ok' });
  });

  it('before hello only hello is served: UNAUTHENTICATED, and the connection may still authenticate', async () => {
    const c = await connect();
    await expect(c.produce('orders', [{ v: bytes('early') }])).rejects.toMatchObject({ code: 'UNAUTHENTICATED' });
    await expect(c.hello(await token())).resolves.toMatchObject({ subject: 'alice' });
    await expect(c.request({ t: 'ping' })).resolves.toMatchObject({ t: 'ok' });
  });
});

describe('WebSocket specifics', () => {
  it('Sec-WebSocket-Protocol bearer authenticates; the hub answers tributary.v1 only', async () => {
    const jwt = await token({ sub: 'browser-user' });
    const c = await connect({ protocols: ['tributary.v1', `bearer.${jwt}`] });
    expect(c.ws.protocol).toBe('tributary.v1');
    // Authenticated from the upgrade: no hello needed.
    await expect(c.request({ t: 'ping' })).resolves.toMatchObject({ t: 'ok' });
    await expect(c.hello()).resolves.toMatchObject({ subject: 'browser-user' });
  });

  it('a bad token in Sec-WebSocket-Protocol closes with 4401 and a reason', async () => {
    const c = await connect({ protocols: ['tributary.v1', `bearer.${unsignedToken()}`] });
    const closed = await c.closed;
    expect(closed.code).toBe(4401);
    expect(closed.reason).toMatch(/^TOKEN_INVALID: /);
  });

  it('a connection that does not authenticate in time is closed with 4408 AUTH_TIMEOUT', async () => {
    const c = await connect();
    const closed = await c.closed;
    expect(closed.code).toBe(4408);
    expect(closed.reason).toMatch(/^AUTH_TIMEOUT: did not authenticate in time/);
    expect(await refusals(hub, 'auth_timeout')).toBeGreaterThanOrEqual(1);
  });
});

describe('origins', () => {
  it('refuses a WebSocket upgrade from a disallowed Origin with 403 and a JSON body, counted', async () => {
    const before = await refusals(hub, 'origin');
    const refused = await WsClient.connect(hub.wsUrl, { options: { origin: 'https://evil.example.net' } }).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(UpgradeRefused);
    expect((refused as UpgradeRefused).status).toBe(403);
    expect(JSON.parse((refused as UpgradeRefused).body)).toMatchObject({ error: { code: 'ORIGIN_FORBIDDEN' } });
    const allowed = await connect({ options: { origin: APP_ORIGIN } });
    await expect(allowed.hello(await token())).resolves.toMatchObject({ t: 'ok' });
    expect(await refusals(hub, 'origin')).toBeGreaterThan(before);
  });

  it('CORS from the same list: preflight 204 for an allowed origin, 403 ORIGIN_FORBIDDEN otherwise', async () => {
    const before = await refusals(hub, 'origin');
    const preflight = (origin: string): Promise<Response> =>
      fetch(`${hub.url}/v1/topics/orders/records`, { method: 'OPTIONS', headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization' } });
    const ok = await preflight(APP_ORIGIN);
    expect(ok.status).toBe(204);
    expect(ok.headers.get('access-control-allow-origin')).toBe(APP_ORIGIN);
    expect(ok.headers.get('access-control-allow-headers')).toMatch(/Authorization/);
    expect(ok.headers.get('access-control-allow-credentials')).toBeNull();
    const bad = await preflight('https://evil.example.net');
    expect(bad.status).toBe(403);
    expect(bad.headers.get('access-control-allow-origin')).toBeNull();

    const get = await fetch(`${hub.url}/v1/topics`, { headers: { origin: APP_ORIGIN, authorization: `Bearer ${await adminToken()}` } });
    expect(get.status).toBe(200);
    expect(get.headers.get('access-control-allow-origin')).toBe(APP_ORIGIN);
    const denied = await fetch(`${hub.url}/v1/topics`, { headers: { origin: 'https://evil.example.net', authorization: `Bearer ${await adminToken()}` } });
    expect(denied.status).toBe(403);
    expect(((await denied.json()) as { error: { code: string } }).error.code).toBe('ORIGIN_FORBIDDEN');
    expect(await refusals(hub, 'origin')).toBeGreaterThanOrEqual(before + 2);
  });
});
