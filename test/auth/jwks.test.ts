/**
 * A real JWKS endpoint on loopback whose keys change under a running
 * verifier, the way an identity provider rotates its signing keys: first
 * the TokenVerifier alone (cooldown, unreachable endpoint), then a whole hub
 * that accepts the new key's tokens without a restart and refuses the
 * retired key's.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, SignJWT, type JWK } from 'jose';
import { afterEach, describe, expect, it } from 'vitest';
import { TributaryError } from '../../protocol/errors.ts';
import { resolveAuthConfig, TokenVerifier } from '../../server/auth/index.ts';
import { startHub, type Hub } from '../../harness/hub.ts';
import { waitFor } from '../../harness/wait.ts';
import { WsClient } from '../helpers/ws-client.ts';

interface JwksServer {
  url: string;
  fetches: number;
  keys: JWK[];
  status: number;
  close(): Promise<void>;
}

async function startJwksServer(): Promise<JwksServer> {
  const state = { fetches: 0, keys: [] as JWK[], status: 200 };
  const server = http.createServer((req, res) => {
    if (req.url !== '/.well-known/jwks.json') {
      res.writeHead(404).end();
      return;
    }
    state.fetches++;
    res.writeHead(state.status, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: state.keys }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return Object.assign(state, {
    url: `http://127.0.0.1:${port}/.well-known/jwks.json`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  });
}

async function signingKey(kid: string) {
  const { publicKey, privateKey } = await generateKeyPair('RS256');
  const jwk = { ...(await exportJWK(publicKey)), kid, alg: 'RS256', use: 'sig' };
  const sign = (sub: string) => new SignJWT({ sub, aud: 'tributary', tributary: { consume: ['*'] } }).setProtectedHeader({ alg: 'RS256', kid }).setExpirationTime('5m').sign(privateKey);
  return { jwk, sign };
}

let jwks: JwksServer | undefined;
let hub: Hub | undefined;
afterEach(async () => {
  await hub?.stop();
  hub?.cleanup();
  hub = undefined;
  await jwks?.close();
  jwks = undefined;
});

describe('TokenVerifier with a JWKS URL', () => {
  it('picks up a rotated key without a restart, and keeps refetches bounded by the cooldown', async () => {
    jwks = await startJwksServer();
    const keyA = await signingKey('key-a');
    const keyB = await signingKey('key-b');
    jwks.keys = [keyA.jwk];
    // Sign everything up front: under load, signing inside the timed window could outlast the cooldown.
    const tokenB = await keyB.sign('bob');
    const junk = await signingKey('made-up');
    const junkTokens = await Promise.all(Array.from({ length: 20 }, () => junk.sign('mallory')));
    const v = new TokenVerifier(resolveAuthConfig({ jwksUrl: jwks.url, audience: 'tributary', allowedOrigins: ['*'], jwksCooldownMs: 1500 }));

    expect((await v.verify(await keyA.sign('alice'))).subject).toBe('alice');
    expect((await v.verify(await keyA.sign('alice'))).subject).toBe('alice');
    expect(jwks.fetches).toBe(1); // cached

    // The provider rotates: key B is published, key A retired.
    jwks.keys = [keyB.jwk];

    // Within the cooldown an unknown kid does not cause a fetch: refused, one fetch so far.
    const early = await v.verify(tokenB).catch((e: unknown) => e);
    expect(early).toBeInstanceOf(TributaryError);
    expect((early as TributaryError).code).toBe('TOKEN_INVALID');
    expect((early as TributaryError).message).toMatch(/no key in the JWKS matches/);
    expect(jwks.fetches).toBe(1);

    // Once the cooldown is over, the unknown kid triggers one refetch and the new key verifies; the
    // attempts refused while waiting fetch nothing (the count stays at two).
    await waitFor(async () => (await v.verify(tokenB)).subject === 'bob', 10_000, 'key B to verify after the cooldown');
    expect(jwks.fetches).toBe(2);

    // A flood of made-up kids right after costs no further fetches.
    for (const t of junkTokens) await v.verify(t).catch(() => undefined);
    expect(jwks.fetches).toBe(2);

    // And the retired key is refused once the set no longer holds it.
    await expect(v.verify(await keyA.sign('alice'))).rejects.toMatchObject({ code: 'TOKEN_INVALID' });
  });

  it('reports an unreachable JWKS endpoint as NOT_READY, not as a bad token', async () => {
    jwks = await startJwksServer();
    const key = await signingKey('k1');
    jwks.keys = [key.jwk];
    jwks.status = 500;
    const v = new TokenVerifier(resolveAuthConfig({ jwksUrl: jwks.url, allowedOrigins: ['*'] }));
    const err = (await v.verify(await key.sign('alice')).catch((e: unknown) => e)) as TributaryError;
    expect(err.code).toBe('NOT_READY');
    expect(err.retriable).toBe(true);
    expect(err.message).toMatch(/signing keys could not be fetched/);

    // Once the endpoint recovers the same verifier works.
    jwks.status = 200;
    expect((await v.verify(await key.sign('alice'))).subject).toBe('alice');
  });

  it('a hub picks up a rotated key without a restart and refuses the retired one', async () => {
    jwks = await startJwksServer();
    hub = await startHub({ args: ['--auth-jwks-url', jwks.url, '--auth-jwks-cooldown-ms', '200', '--auth-audience', 'tributary', '--allowed-origins', '*'] });
    const oldKey = await signingKey('2026-old');
    const newKey = await signingKey('2026-new');
    const status = async (jwt: string): Promise<number> => (await fetch(`${hub!.url}/v1/topics`, { headers: { authorization: `Bearer ${jwt}` } })).status;
    jwks.keys = [oldKey.jwk];
    expect(await status(await oldKey.sign('svc'))).toBe(200);
    const c = await WsClient.connect(hub.wsUrl);
    await expect(c.hello(await oldKey.sign('svc'))).resolves.toMatchObject({ subject: 'svc' });
    await c.close();
    expect(jwks.fetches).toBe(1);

    // The provider rotates: the new key is published, the old one retired. Refused until the refetch
    // cooldown is over, then accepted after exactly one more fetch.
    jwks.keys = [newKey.jwk];
    const newToken = await newKey.sign('svc');
    await waitFor(async () => (await status(newToken)) === 200, 10_000, 'the hub to accept the new key');
    expect(jwks.fetches).toBe(2);
    const d = await WsClient.connect(hub.wsUrl);
    await expect(d.hello(await newKey.sign('svc'))).resolves.toMatchObject({ subject: 'svc' });
    await d.close();

    // The retired key no longer verifies (its kid is not in the set anymore).
    const res = await fetch(`${hub.url}/v1/topics`, { headers: { authorization: `Bearer ${await oldKey.sign('svc')}` } });
    expect(res.status).toBe(401);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('TOKEN_INVALID');
  });
});
