/**
 * Tokens must expire: one without `exp` is refused unless the operator
 * allows it (and is warned at start-up), and no token lives longer than
 * auth.maxTokenLifetimeSec counted from its `iat` (or from when the hub
 * first sees it, without `iat`).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Hub } from '../../harness/hub.ts';
import { WsClient } from '../helpers/ws-client.ts';
import { createTopic, recordCount, startAuthHub, token } from '../helpers/auth-hub.ts';

const hubs: Hub[] = [];
let strict: Hub;

beforeAll(async () => {
  strict = await startAuthHub(['--auth-max-token-lifetime-sec', '60']);
  hubs.push(strict);
  await createTopic(strict, 'orders');
});

afterAll(async () => {
  for (const h of hubs) {
    await h.stop();
    h.cleanup();
  }
});

async function httpProduce(hub: Hub, jwt: string): Promise<Response> {
  return fetch(`${hub.url}/v1/topics/orders/records`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${jwt}` },
    body: JSON.stringify({ records: [{ value: 'x' }] }),
  });
}

async function helloRefused(hub: Hub, jwt: string, code: string, message: RegExp): Promise<void> {
  const c = await WsClient.connect(hub.wsUrl);
  await expect(c.hello(jwt)).rejects.toMatchObject({ code });
  const closed = await c.closed;
  expect(closed.code).toBe(4401);
  expect(closed.reason).toMatch(message);
}

const nowSec = (): number => Math.floor(Date.now() / 1000);

describe('tokens must expire', () => {
  it('a token without exp is refused by default: 401 over HTTP, close 4401 over WebSocket', async () => {
    const jwt = await token({ noExp: true });
    const res = await httpProduce(strict, jwt);
    expect(res.status).toBe(401);
    const body = (await res.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe('TOKEN_INVALID');
    expect(body.error.message).toMatch(/no "exp" claim/);
    await helloRefused(strict, jwt, 'TOKEN_INVALID', /no "exp" claim/);
    expect(await recordCount(strict, 'orders')).toBe(0);
  });

  it('a token issued longer ago than maxTokenLifetimeSec is refused, whatever its exp says', async () => {
    const jwt = await token({ iat: nowSec() - 120, expInSec: 3600 });
    const res = await httpProduce(strict, jwt);
    expect(res.status).toBe(401);
    const body = (await res.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe('TOKEN_EXPIRED');
    expect(body.error.message).toMatch(/issued .* ago; tokens live at most 60 s \(auth\.maxTokenLifetimeSec\)/);
    await helloRefused(strict, jwt, 'TOKEN_EXPIRED', /maxTokenLifetimeSec/);
    expect(await recordCount(strict, 'orders')).toBe(0);
  });

  it('a long exp is cut to iat + maxTokenLifetimeSec, also for the connection it opened', async () => {
    const iat = nowSec();
    const c = await WsClient.connect(strict.wsUrl);
    const ok = (await c.hello(await token({ iat, expInSec: 3600 }))) as unknown as { expiresAtMs: number | null };
    expect(ok.expiresAtMs).toBe((iat + 60) * 1000);
    expect((await httpProduce(strict, await token({ expInSec: 30 }))).status).toBe(200);
    await c.close();
  });

  it('with auth.allowTokensWithoutExp the hub warns loudly at start-up, and such a token lives maxTokenLifetimeSec', async () => {
    const lax = await startAuthHub(['--auth-max-token-lifetime-sec', '2'], { env: { TRIBUTARY_AUTH_ALLOW_TOKENS_WITHOUT_EXP: 'true' } });
    hubs.push(lax);
    expect(lax.output()).toMatch(/TOKENS WITHOUT AN EXPIRY ARE ACCEPTED/);
    await createTopic(lax, 'orders');
    const jwt = await token({ noExp: true });
    expect((await httpProduce(lax, jwt)).status).toBe(200);
    const c = await WsClient.connect(lax.wsUrl);
    const ok = (await c.hello(jwt)) as unknown as { expiresAtMs: number | null };
    expect(ok.expiresAtMs).not.toBeNull();
    // The connection reaches the expiry close instead of living forever.
    const closed = await c.closed;
    expect(closed.code).toBe(4401);
    expect(closed.reason).toMatch(/TOKEN_EXPIRED/);
  });

  it('the strict hub does not warn about tokens without exp', () => {
    expect(strict.output()).not.toMatch(/WITHOUT AN EXPIRY/);
  });
});
