/**
 * A real JWKS endpoint on loopback whose keys change under a running
 * verifier, the way an identity provider rotates its signing keys.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, SignJWT, type JWK } from 'jose';
import { afterEach, describe, expect, it } from 'vitest';
import { TributaryError } from '../../protocol/errors.ts';
import { resolveAuthConfig, TokenVerifier } from '../../server/auth/index.ts';

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
  const sign = (sub: string) =>
    new SignJWT({ sub, aud: 'tributary', tributary: { consume: ['*'] } })
      .setProtectedHeader({ alg: 'RS256', kid })
      .setExpirationTime('5m')
      .sign(privateKey);
  return { jwk, sign };
}

let jwks: JwksServer | undefined;
afterEach(async () => {
  await jwks?.close();
  jwks = undefined;
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

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

    await sleep(1600);
    // After it, the unknown kid triggers one refetch and the new key verifies.
    expect((await v.verify(tokenB)).subject).toBe('bob');
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
});
