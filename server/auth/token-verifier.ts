/**
 * Verifies JWTs with jose and turns them into Principals.
 *
 * Every refusal is a TributaryError: TOKEN_EXPIRED for an expired token,
 * TOKEN_INVALID for everything else the client got wrong (malformed, bad
 * signature, an algorithm not on the list — `none` included —, wrong
 * iss/aud, nbf in the future, unknown kid), and NOT_READY (503, retriable)
 * when the JWKS endpoint cannot be reached, since that is the hub's problem,
 * not the token's. Messages name the failed check and never the token.
 */
import { createPublicKey, type KeyObject } from 'node:crypto';
import { createRemoteJWKSet, decodeProtectedHeader, errors, jwtVerify, type JWTPayload, type JWTVerifyGetKey } from 'jose';
import { TributaryError } from '../../protocol/errors.ts';
import { LIMITS } from '../../protocol/limits.ts';
import type { AuthConfig } from './auth-config.ts';
import { MAX_SUBJECT_LENGTH, principalFromClaims, type Principal } from './principal.ts';

export interface TokenVerifierOptions {
  /** The clock, in ms since the epoch (tests). */
  now?: () => number;
}

/** Three base64url parts: the only shape accepted (no JWE, no JSON serialization). */
const COMPACT_JWS_RE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;

/** Thrown inside the key resolver when the JWKS endpoint fails, so it is not blamed on the token. */
class KeySourceUnavailable extends Error {}

type KeyInput = Uint8Array | KeyObject | JWTVerifyGetKey;

/** Attacker-controlled text, shortened and quoted, for messages. */
function quote(value: unknown): string {
  const s = typeof value === 'string' ? value : String(value);
  return JSON.stringify(s.length > 64 ? `${s.slice(0, 64)}…` : s);
}

function invalid(reason: string): TributaryError {
  return new TributaryError('TOKEN_INVALID', `token is invalid: ${reason}`);
}

export class TokenVerifier {
  private readonly config: AuthConfig;
  private readonly key: KeyInput;
  private readonly now: () => number;
  private readonly allowed: ReadonlySet<string>;

  constructor(config: AuthConfig, opts: TokenVerifierOptions = {}) {
    if (config.mode !== 'jwt') throw new Error('TokenVerifier needs an auth config in jwt mode (use resolveAuthConfig)');
    if (config.algorithms.length === 0 || config.algorithms.some((a) => a.toLowerCase() === 'none')) {
      throw new Error('TokenVerifier needs an explicit list of algorithms without "none"');
    }
    this.config = config;
    this.now = opts.now ?? Date.now;
    this.allowed = new Set(config.algorithms);
    this.key = TokenVerifier.keyFor(config);
  }

  private static keyFor(config: AuthConfig): KeyInput {
    if (config.secret) return new TextEncoder().encode(config.secret);
    if (config.publicKey) return createPublicKey({ key: config.publicKey, format: 'pem' });
    if (config.jwksUrl) {
      // jose refetches when the cache is older than cacheMaxAge, and when a
      // token names a kid it does not know, at most once per cooldown: that
      // is how a rotated key is picked up without a restart, and why a flood
      // of made-up kids cannot turn into a flood of fetches.
      const remote = createRemoteJWKSet(new URL(config.jwksUrl), {
        cacheMaxAge: config.jwksCacheMs,
        cooldownDuration: config.jwksCooldownMs,
        timeoutDuration: config.jwksTimeoutMs,
      });
      return async (header, token) => {
        try {
          return await remote(header, token);
        } catch (err) {
          if (err instanceof errors.JWKSNoMatchingKey || err instanceof errors.JWKSMultipleMatchingKeys) throw err;
          throw new KeySourceUnavailable(err instanceof Error ? err.message : String(err), { cause: err });
        }
      };
    }
    throw new Error('auth config has no key source');
  }

  /** Verify a token and build its principal. Rejects with a TributaryError. */
  async verify(token: string): Promise<Principal> {
    if (typeof token !== 'string' || token.length === 0) throw new TributaryError('UNAUTHENTICATED', 'authentication required: no token given');
    if (token.length > LIMITS.maxTokenBytes) throw invalid(`longer than ${LIMITS.maxTokenBytes} bytes`);
    if (!COMPACT_JWS_RE.test(token)) throw invalid('not a compact JWT (three base64url parts separated by dots)');

    let alg: unknown;
    try {
      alg = decodeProtectedHeader(token).alg;
    } catch {
      throw invalid('its header is not base64url-encoded JSON');
    }
    if (typeof alg !== 'string' || !this.allowed.has(alg)) {
      throw invalid(`algorithm ${quote(alg)} is not allowed (allowed: ${this.config.algorithms.join(', ')})`);
    }

    let payload: JWTPayload;
    try {
      const opts = {
        algorithms: this.config.algorithms,
        clockTolerance: this.config.clockToleranceSec,
        currentDate: new Date(this.now()),
        ...(this.config.issuer ? { issuer: this.config.issuer } : {}),
        ...(this.config.audience ? { audience: this.config.audience } : {}),
      };
      const key = this.key;
      ({ payload } = typeof key === 'function' ? await jwtVerify(token, key, opts) : await jwtVerify(token, key, opts));
    } catch (err) {
      throw this.translate(err);
    }

    const subject = payload.sub;
    if (typeof subject !== 'string' || subject.length === 0) throw invalid('it has no "sub" claim');
    if (subject.length > MAX_SUBJECT_LENGTH) throw invalid(`its "sub" claim is longer than ${MAX_SUBJECT_LENGTH} characters`);
    return principalFromClaims(subject, payload, this.expiresAtMs(payload));
  }

  /**
   * When the hub stops honouring a token: its `exp`, cut to `iat` (or now,
   * without `iat`) plus maxTokenLifetimeSec, plus the clock tolerance. A token
   * without `exp` is refused unless the operator allowed it; one issued longer
   * ago than the lifetime is refused as expired. jose has already checked
   * that `iat`, when present, is a number.
   */
  private expiresAtMs(payload: JWTPayload): number {
    const nowMs = this.now();
    const toleranceMs = this.config.clockToleranceSec * 1000;
    const maxLifetimeMs = this.config.maxTokenLifetimeSec * 1000;
    if (typeof payload.exp !== 'number' && !this.config.allowTokensWithoutExp) {
      throw invalid('it has no "exp" claim; tokens must expire (an operator may allow tokens without "exp" with auth.allowTokensWithoutExp)');
    }
    const issuedAtMs = typeof payload.iat === 'number' ? payload.iat * 1000 : nowMs;
    const boundMs = issuedAtMs + maxLifetimeMs;
    if (boundMs + toleranceMs <= nowMs) {
      throw new TributaryError(
        'TOKEN_EXPIRED',
        `token has expired: issued ${Math.round((nowMs - issuedAtMs) / 1000)} s ago; tokens live at most ${this.config.maxTokenLifetimeSec} s (auth.maxTokenLifetimeSec)`,
      );
    }
    const expMs = typeof payload.exp === 'number' ? Math.min(payload.exp * 1000, boundMs) : boundMs;
    return expMs + toleranceMs;
  }

  /**
   * Verify a token sent in band (`auth` frame) to replace `current`'s: it
   * must be valid and carry the same subject (SUBJECT_CHANGED otherwise).
   */
  async refresh(current: Principal, token: string): Promise<Principal> {
    const next = await this.verify(token);
    if (next.subject !== current.subject) {
      throw new TributaryError('SUBJECT_CHANGED', `a refreshed token must carry the same subject (connection is ${quote(current.subject)}, token is ${quote(next.subject)})`);
    }
    return next;
  }

  private translate(err: unknown): TributaryError {
    if (err instanceof TributaryError) return err;
    if (err instanceof KeySourceUnavailable) {
      return new TributaryError('NOT_READY', `cannot check tokens: the signing keys could not be fetched from the JWKS URL (${err.message})`);
    }
    if (err instanceof errors.JWTExpired) {
      const exp = (err.payload as JWTPayload | undefined)?.exp;
      const at = typeof exp === 'number' ? ` at ${new Date(exp * 1000).toISOString()}` : '';
      return new TributaryError('TOKEN_EXPIRED', `token has expired${at} (clock tolerance ${this.config.clockToleranceSec} s)`);
    }
    if (err instanceof errors.JWTClaimValidationFailed) {
      switch (err.claim) {
        case 'nbf':
          return invalid(`not valid yet ("nbf" is in the future beyond the ${this.config.clockToleranceSec} s clock tolerance)`);
        case 'iss':
          return invalid(`"iss" claim does not match the configured issuer ${quote(this.config.issuer)}`);
        case 'aud':
          return invalid(`"aud" claim does not include the configured audience ${quote(this.config.audience)}`);
        case 'iat':
          return invalid('"iat" claim is in the future or malformed');
        default:
          return invalid(`claim ${quote(err.claim)} failed validation (${err.reason})`);
      }
    }
    if (err instanceof errors.JWSSignatureVerificationFailed) return invalid('signature does not verify with the configured key');
    if (err instanceof errors.JOSEAlgNotAllowed) return invalid(`algorithm not allowed (allowed: ${this.config.algorithms.join(', ')})`);
    if (err instanceof errors.JWKSNoMatchingKey) return invalid('no key in the JWKS matches its "kid" and "alg"');
    if (err instanceof errors.JWKSMultipleMatchingKeys) return invalid('several keys in the JWKS match it; give the token a "kid"');
    if (err instanceof errors.JWTInvalid) return invalid(`malformed claims (${err.message})`);
    if (err instanceof errors.JWSInvalid) return invalid(`malformed JWS (${err.message})`);
    if (err instanceof errors.JOSENotSupported) return invalid(`unsupported: ${err.message}`);
    // A key of the wrong type for the algorithm surfaces as a TypeError from jose.
    if (err instanceof TypeError) return invalid(`the configured key cannot verify this algorithm (${err.message})`);
    return invalid(err instanceof Error ? err.message : String(err));
  }
}
