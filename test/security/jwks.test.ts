/**
 * A hub whose keys come from a JWKS URL (a node:http server on loopback
 * here): when the provider rotates its signing key, tokens signed with the
 * new key are accepted without restarting the hub, and the retired key's
 * tokens are refused once the set no longer holds it.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, SignJWT, type JWK } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHub, type Hub } from '../helpers/hub.ts';
import { WsClient } from '../helpers/ws-client.ts';
import { AUDIENCE, sleep } from './support.ts';

interface SigningKey {
  jwk: JWK;
  sign(sub: string): Promise<string>;
}

async function signingKey(kid: string): Promise<SigningKey> {
  const { publicKey, privateKey } = await generateKeyPair('ES256');
  const jwk = { ...(await exportJWK(publicKey)), kid, alg: 'ES256', use: 'sig' };
  const claims = { tributary: { consume: ['*'], produce: ['*'] } };
  return {
    jwk,
    sign: (sub) => new SignJWT(claims).setProtectedHeader({ alg: 'ES256', kid }).setSubject(sub).setAudience(AUDIENCE).setIssuer('https://idp.test').setExpirationTime('5m').sign(privateKey),
  };
}

let hub: Hub;
let server: http.Server;
let keys: JWK[] = [];
let fetches = 0;

beforeAll(async () => {
  server = http.createServer((_req, res) => {
    fetches++;
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys }));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const jwksUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/.well-known/jwks.json`;
  hub = await startHub({
    args: ['--auth-jwks-url', jwksUrl, '--auth-jwks-cooldown-ms', '200', '--auth-issuer', 'https://idp.test', '--auth-audience', AUDIENCE, '--allowed-origins', '*'],
  });
});

afterAll(async () => {
  await hub.stop();
  hub.cleanup();
  await new Promise((r) => server.close(r));
});

const status = async (jwt: string): Promise<number> => (await fetch(`${hub.url}/v1/topics`, { headers: { authorization: `Bearer ${jwt}` } })).status;

describe('JWKS key source', () => {
  it('picks up a rotated key without a restart', async () => {
    const oldKey = await signingKey('2026-old');
    const newKey = await signingKey('2026-new');
    keys = [oldKey.jwk];
    expect(await status(await oldKey.sign('svc'))).toBe(200);
    const c = await WsClient.connect(hub.wsUrl);
    await expect(c.hello(await oldKey.sign('svc'))).resolves.toMatchObject({ subject: 'svc' });
    await c.close();
    expect(fetches).toBe(1);

    // The provider rotates: the new key is published, the old one retired.
    keys = [newKey.jwk];
    await sleep(250); // past the refetch cooldown
    expect(await status(await newKey.sign('svc'))).toBe(200);
    expect(fetches).toBe(2);
    const d = await WsClient.connect(hub.wsUrl);
    await expect(d.hello(await newKey.sign('svc'))).resolves.toMatchObject({ subject: 'svc' });
    await d.close();

    // The retired key no longer verifies (its kid is not in the set anymore).
    await sleep(250);
    const res = await fetch(`${hub.url}/v1/topics`, { headers: { authorization: `Bearer ${await oldKey.sign('svc')}` } });
    expect(res.status).toBe(401);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('TOKEN_INVALID');
  });
});
