import { exportSPKI, generateKeyPair, SignJWT, type JWTPayload } from 'jose';
import { describe, expect, it } from 'vitest';
import { TributaryError } from '../../protocol/errors.ts';
import { LIMITS } from '../../protocol/limits.ts';
import { createAuthenticator, resolveAuthConfig, TokenVerifier, type AuthConfigInput } from '../../server/auth/index.ts';

const SECRET = 'a-test-secret-that-is-at-least-32-bytes-long';
const OTHER_SECRET = 'another-secret-also-at-least-32-bytes-long!!';
const nowSec = () => Math.floor(Date.now() / 1000);

function hs(payload: JWTPayload, secret = SECRET, alg = 'HS256'): Promise<string> {
  return new SignJWT(payload).setProtectedHeader({ alg }).sign(new TextEncoder().encode(secret));
}

function verifier(extra: AuthConfigInput = {}): TokenVerifier {
  return new TokenVerifier(resolveAuthConfig({ secret: SECRET, allowedOrigins: ['*'], issuer: 'https://issuer.test', audience: 'tributary', ...extra }));
}

const good = (over: JWTPayload = {}): JWTPayload => ({
  sub: 'user-1',
  iss: 'https://issuer.test',
  aud: 'tributary',
  exp: nowSec() + 600,
  tributary: { produce: ['orders'], consume: ['orders'], groups: ['billing'] },
  ...over,
});

const b64url = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');

/** Expect a rejection with this code and a message matching `msg`, that never echoes the token. */
async function refused(p: Promise<unknown>, code: string, msg: RegExp, token?: string): Promise<void> {
  const err = await p.then(
    () => {
      throw new Error('expected a refusal');
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(TributaryError);
  const te = err as TributaryError;
  expect(te.code).toBe(code);
  expect(te.message).toMatch(msg);
  if (token) expect(te.message).not.toContain(token);
}

describe('TokenVerifier with an HMAC secret', () => {
  it('accepts a valid token and builds its principal from the claims', async () => {
    const exp = nowSec() + 600;
    const p = await verifier().verify(await hs(good({ exp })));
    expect(p.subject).toBe('user-1');
    expect(p.anonymous).toBe(false);
    expect(p.admin).toBe(false);
    expect(p.canProduce('orders')).toBe(true);
    expect(p.canProduce('payments')).toBe(false);
    expect(p.canJoin('billing')).toBe(true);
    // accepted until exp plus the 30 s tolerance
    expect(p.expiresAtMs).toBe((exp + 30) * 1000);
  });

  it('refuses a missing token as UNAUTHENTICATED', async () => {
    await refused(verifier().verify(''), 'UNAUTHENTICATED', /no token/);
    await refused(createAuthenticator(resolveAuthConfig({ secret: SECRET, allowedOrigins: ['*'] })).authenticate(null), 'UNAUTHENTICATED', /send a token/);
  });

  it('refuses malformed tokens and says so', async () => {
    await refused(verifier().verify('not-a-jwt'), 'TOKEN_INVALID', /not a compact JWT/);
    await refused(verifier().verify('a.b.c.d.e'), 'TOKEN_INVALID', /not a compact JWT/);
    await refused(verifier().verify('%%%.abc.def'), 'TOKEN_INVALID', /not a compact JWT/);
    await refused(verifier().verify('bm90anNvbg.e30.c2ln'), 'TOKEN_INVALID', /header is not base64url-encoded JSON/);
    const tooLong = `${b64url({ alg: 'HS256' })}.${'a'.repeat(LIMITS.maxTokenBytes)}.sig`;
    await refused(verifier().verify(tooLong), 'TOKEN_INVALID', /longer than 16384 bytes/);
  });

  it('refuses a token signed with another key', async () => {
    const t = await hs(good(), OTHER_SECRET);
    await refused(verifier().verify(t), 'TOKEN_INVALID', /signature does not verify/, t);
  });

  it('refuses an unsigned alg:none token crafted by hand', async () => {
    const t = `${b64url({ alg: 'none', typ: 'JWT' })}.${b64url(good())}.`;
    await refused(verifier().verify(t), 'TOKEN_INVALID', /algorithm "none" is not allowed/, t);
    // also with a junk signature part, and with the alg spelled differently
    await refused(verifier().verify(`${b64url({ alg: 'none' })}.${b64url(good())}.c2ln`), 'TOKEN_INVALID', /"none" is not allowed/);
    await refused(verifier().verify(`${b64url({ alg: 'NONE' })}.${b64url(good())}.`), 'TOKEN_INVALID', /"NONE" is not allowed/);
  });

  it('refuses an algorithm outside the explicit list', async () => {
    const v = verifier({ algorithms: ['HS512'] });
    await refused(v.verify(await hs(good())), 'TOKEN_INVALID', /algorithm "HS256" is not allowed \(allowed: HS512\)/);
    expect((await v.verify(await hs(good(), SECRET, 'HS512'))).subject).toBe('user-1');
  });

  it('refuses an expired token as TOKEN_EXPIRED, beyond the clock tolerance', async () => {
    const t = await hs(good({ exp: nowSec() - 120 }));
    await refused(verifier().verify(t), 'TOKEN_EXPIRED', /expired at .*Z \(clock tolerance 30 s\)/, t);
  });

  it('allows clock skew within the tolerance for exp and nbf, and not beyond', async () => {
    const v = verifier({ clockToleranceSec: 30 });
    expect((await v.verify(await hs(good({ exp: nowSec() - 10 })))).subject).toBe('user-1');
    expect((await v.verify(await hs(good({ nbf: nowSec() + 10 })))).subject).toBe('user-1');
    await refused(v.verify(await hs(good({ exp: nowSec() - 45 }))), 'TOKEN_EXPIRED', /expired/);
    const strict = verifier({ clockToleranceSec: 0 });
    await refused(strict.verify(await hs(good({ exp: nowSec() - 10 }))), 'TOKEN_EXPIRED', /tolerance 0 s/);
  });

  it('refuses a token whose nbf is in the future', async () => {
    await refused(verifier().verify(await hs(good({ nbf: nowSec() + 300 }))), 'TOKEN_INVALID', /not valid yet \("nbf" is in the future/);
  });

  it('refuses a token for another audience or from another issuer', async () => {
    await refused(verifier().verify(await hs(good({ aud: 'someone-else' }))), 'TOKEN_INVALID', /"aud" claim does not include the configured audience "tributary"/);
    await refused(verifier().verify(await hs(good({ aud: undefined }))), 'TOKEN_INVALID', /"aud"/);
    await refused(verifier().verify(await hs(good({ iss: 'https://evil.test' }))), 'TOKEN_INVALID', /"iss" claim does not match the configured issuer/);
    // audience may be one of several in the token
    expect((await verifier().verify(await hs(good({ aud: ['other', 'tributary'] })))).subject).toBe('user-1');
  });

  it('refuses a token without a subject', async () => {
    await refused(verifier().verify(await hs(good({ sub: undefined }))), 'TOKEN_INVALID', /no "sub" claim/);
  });

  it('accepts a valid token without the tributary claim, granting nothing', async () => {
    const p = await verifier().verify(await hs(good({ tributary: undefined })));
    expect(p.subject).toBe('user-1');
    expect([p.canProduce('orders'), p.canConsume('orders'), p.canJoin('billing'), p.admin]).toEqual([false, false, false, false]);
  });

  it('reads the clock it is given', async () => {
    const t = await hs(good({ exp: 2_000_000_000 }));
    const v = new TokenVerifier(resolveAuthConfig({ secret: SECRET, allowedOrigins: ['*'] }), { now: () => 2_000_000_100_000 });
    await refused(v.verify(t), 'TOKEN_EXPIRED', /2033-05-18T03:33:20\.000Z/);
  });

  it('refuses a token without exp unless allowed; then it lives maxTokenLifetimeSec from iat, or from now', async () => {
    const t = await hs(good({ exp: undefined }));
    await refused(verifier().verify(t), 'TOKEN_INVALID', /no "exp" claim/, t);
    const now = 1_900_000_000_000;
    const lax = new TokenVerifier(resolveAuthConfig({ secret: SECRET, allowedOrigins: ['*'], allowTokensWithoutExp: true, maxTokenLifetimeSec: 600 }), { now: () => now });
    expect((await lax.verify(t)).expiresAtMs).toBe(now + 600_000 + 30_000);
    const withIat = await hs(good({ exp: undefined, iat: now / 1000 - 100 }));
    expect((await lax.verify(withIat)).expiresAtMs).toBe(now + 500_000 + 30_000);
  });

  it('cuts a long exp to iat + maxTokenLifetimeSec and refuses a token issued longer ago', async () => {
    const v = verifier({ maxTokenLifetimeSec: 600 });
    const iat = nowSec();
    expect((await v.verify(await hs(good({ iat, exp: iat + 86_400 })))).expiresAtMs).toBe((iat + 600 + 30) * 1000);
    const old = await hs(good({ iat: iat - 700, exp: iat + 86_400 }));
    await refused(v.verify(old), 'TOKEN_EXPIRED', /issued 7\d\d s ago; tokens live at most 600 s/, old);
  });

  it('refreshes only to a token for the same subject', async () => {
    const v = verifier();
    const first = await v.verify(await hs(good()));
    const next = await v.refresh(first, await hs(good({ exp: nowSec() + 3600 })));
    expect(next.expiresAtMs).toBeGreaterThan(first.expiresAtMs!);
    await refused(v.refresh(first, await hs(good({ sub: 'user-2' }))), 'SUBJECT_CHANGED', /same subject/);
  });
});

describe('TokenVerifier with a PEM public key', () => {
  it('verifies ES256 tokens and refuses an HS256 token forged with the public key as secret', async () => {
    const { publicKey, privateKey } = await generateKeyPair('ES256');
    const pem = await exportSPKI(publicKey);
    const cfg = resolveAuthConfig({ publicKey: pem, allowedOrigins: ['*'] });
    expect(cfg.algorithms).toEqual(['ES256']);
    const v = new TokenVerifier(cfg);
    const t = await new SignJWT(good({ iss: undefined, aud: undefined })).setProtectedHeader({ alg: 'ES256' }).sign(privateKey);
    expect((await v.verify(t)).subject).toBe('user-1');

    // The classic key-confusion attack: sign HS256 with the public key's PEM text.
    const forged = await hs(good(), pem);
    await refused(v.verify(forged), 'TOKEN_INVALID', /algorithm "HS256" is not allowed/);

    const other = await generateKeyPair('ES256');
    const wrong = await new SignJWT(good()).setProtectedHeader({ alg: 'ES256' }).sign(other.privateKey);
    await refused(v.verify(wrong), 'TOKEN_INVALID', /signature does not verify/);
  });

  it('verifies RS256 and EdDSA keys', async () => {
    for (const alg of ['RS256', 'EdDSA'] as const) {
      const { publicKey, privateKey } = await generateKeyPair(alg);
      const v = new TokenVerifier(resolveAuthConfig({ publicKey: await exportSPKI(publicKey), allowedOrigins: ['*'] }));
      const t = await new SignJWT({ sub: `${alg}-user`, exp: nowSec() + 60 }).setProtectedHeader({ alg }).sign(privateKey);
      expect((await v.verify(t)).subject).toBe(`${alg}-user`);
    }
  });
});

describe('createAuthenticator', () => {
  it('with auth off every connection is the anonymous principal, token or not', async () => {
    const auth = createAuthenticator(resolveAuthConfig());
    expect(auth.required).toBe(false);
    expect((await auth.authenticate(null)).anonymous).toBe(true);
    expect((await auth.authenticate('garbage')).canProduce('anything')).toBe(true);
  });

  it('with auth on it verifies', async () => {
    const auth = createAuthenticator(resolveAuthConfig({ secret: SECRET, allowedOrigins: ['*'] }));
    expect(auth.required).toBe(true);
    expect((await auth.authenticate(await hs(good({ iss: undefined, aud: undefined })))).subject).toBe('user-1');
    await refused(auth.authenticate('x.y.z'), 'TOKEN_INVALID', /header/);
  });
});
