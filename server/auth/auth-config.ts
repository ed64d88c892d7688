/**
 * The security settings of a hub (authentication and allowed origins), and the one function that turns what an operator
 * wrote into a checked, complete `AuthConfig`.
 *
 * The names, sources and defaults of these settings are the `auth.*` rows
 * and `allowedOrigins` of the settings table (server/settings.ts);
 * docs/security.md is the prose version.
 */
import { createPublicKey, type KeyObject } from 'node:crypto';
import { ASYMMETRIC_ALGORITHMS, HMAC_ALGORITHMS } from '../../protocol/bearer.ts';
import { ConfigError, defaultOf } from '../settings.ts';

type AuthMode = 'none' | 'jwt';

export interface AuthConfig {
  mode: AuthMode;
  /** HMAC secret for HS256/384/512, at least 32 bytes. */
  secret?: string;
  /** A PEM public key (SPKI, `-----BEGIN PUBLIC KEY-----`) for RS*, PS*, ES* or EdDSA. */
  publicKey?: string;
  /** An https URL serving a JSON Web Key Set (http only to loopback). */
  jwksUrl?: string;
  /** How long fetched JWKS keys are trusted before a refetch. */
  jwksCacheMs: number;
  /** Minimum time between two refetches caused by a token with an unknown `kid`. */
  jwksCooldownMs: number;
  /** Timeout of one JWKS HTTP request. */
  jwksTimeoutMs: number;
  /** Required `iss`, when set. */
  issuer?: string;
  /** Required `aud` (the token's `aud` must contain it), when set. */
  audience?: string;
  /** Accepted `alg` values; never `none`. Derived from the key source when not given. */
  algorithms: string[];
  /** Allowed skew between the hub's clock and the issuer's, for `exp` and `nbf`. */
  clockToleranceSec: number;
  /**
   * Accept tokens without `exp` (they then live maxTokenLifetimeSec). Off by
   * default: a leaked token that never expires is a key that never expires.
   */
  allowTokensWithoutExp: boolean;
  /**
   * No token is honoured longer than this after its `iat` (after the hub
   * first verifies it, when it has no `iat`), whatever its `exp` says.
   */
  maxTokenLifetimeSec: number;
  /** A WebSocket that has not authenticated this long after opening is closed (4408). */
  authTimeoutMs: number;
  /**
   * Origins allowed to open WebSockets and to read HTTP answers (CORS):
   * exact origins (`https://app.example.com`), subdomain wildcards
   * (`https://*.example.com`) or `*`. Empty = all, allowed only with auth off.
   */
  allowedOrigins: string[];
}

/** What an operator may write: every field optional. */
export type AuthConfigInput = Partial<AuthConfig>;

const KNOWN_ALGORITHMS: ReadonlySet<string> = new Set([...HMAC_ALGORITHMS, ...ASYMMETRIC_ALGORITHMS]);

/** Shortest HMAC secret accepted: RFC 7518 §3.2 asks for a key at least as long as the hash (256 bits for HS256). */
const MIN_SECRET_BYTES = 32;

/** Parse a PEM public key, or explain why it is not one. */
function parsePublicKey(pem: string): KeyObject | string {
  if (!pem.includes('-----BEGIN')) return 'publicKey must be PEM text (-----BEGIN PUBLIC KEY-----)';
  if (/PRIVATE KEY-----/.test(pem)) return 'publicKey is a PRIVATE key: give the hub only the public half';
  try {
    return createPublicKey({ key: pem, format: 'pem' });
  } catch (err) {
    return `publicKey could not be parsed as a PEM public key (${(err as Error).message})`;
  }
}

/** The algorithms a public key can verify, by its type and curve. */
function algorithmsForKey(key: KeyObject): string[] | string {
  switch (key.asymmetricKeyType) {
    case 'rsa':
      return ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512'];
    case 'rsa-pss':
      return ['PS256', 'PS384', 'PS512'];
    case 'ec': {
      const curve = key.asymmetricKeyDetails?.namedCurve;
      if (curve === 'prime256v1') return ['ES256'];
      if (curve === 'secp384r1') return ['ES384'];
      if (curve === 'secp521r1') return ['ES512'];
      return `publicKey uses the EC curve ${curve ?? '(unknown)'}; JWT needs P-256, P-384 or P-521`;
    }
    case 'ed25519':
      return ['EdDSA', 'Ed25519'];
    default:
      return `publicKey of type ${key.asymmetricKeyType ?? '(unknown)'} is not usable for JWT signatures`;
  }
}

function isLoopbackHost(host: string): boolean {
  return host === 'localhost' || host === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

function checkJwksUrl(raw: string, problems: string[]): void {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    problems.push(`jwksUrl ${JSON.stringify(raw)} is not a URL`);
    return;
  }
  if (url.protocol === 'https:') return;
  if (url.protocol === 'http:' && isLoopbackHost(url.hostname)) return;
  // Keys fetched in clear text could be swapped by anyone on the path, and with them every token.
  problems.push(`jwksUrl must be https (plain http is accepted only for loopback): ${JSON.stringify(raw)}`);
}

/** Validate an origin allow-list entry; null when fine, else the problem. */
function originEntryProblem(entry: string): string | null {
  if (entry === '*') return null;
  const wildcard = /^(https?):\/\/\*\./.test(entry);
  const probe = wildcard ? entry.replace('://*.', '://wildcard.') : entry;
  if (probe.includes('*')) return `allowedOrigins entry ${JSON.stringify(entry)} may hold one wildcard, as its leftmost label (https://*.example.com)`;
  let url: URL;
  try {
    url = new URL(probe);
  } catch {
    return `allowedOrigins entry ${JSON.stringify(entry)} is not an origin like https://app.example.com`;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return `allowedOrigins entry ${JSON.stringify(entry)} must be http or https`;
  if (url.origin !== probe.toLowerCase()) {
    return `allowedOrigins entry ${JSON.stringify(entry)} must be scheme://host[:port] with no path, trailing slash or default port (want ${JSON.stringify(wildcard ? url.origin.replace('://wildcard.', '://*.') : url.origin)})`;
  }
  return null;
}

function checkDuration(name: string, value: number, min: number, problems: string[]): void {
  if (!Number.isFinite(value) || value < min) problems.push(`${name} must be a number >= ${min}, got ${String(value)}`);
}

/**
 * Fill defaults and check everything. The mode is `jwt` when a key source is
 * given and `none` otherwise, unless set explicitly. Throws ConfigError
 * listing every problem.
 */
export function resolveAuthConfig(input: AuthConfigInput = {}): AuthConfig {
  const problems: string[] = [];
  const sources = (['secret', 'publicKey', 'jwksUrl'] as const).filter((k) => input[k] !== undefined && input[k] !== '');
  const mode: AuthMode = input.mode ?? (sources.length > 0 ? 'jwt' : 'none');
  if (mode !== 'none' && mode !== 'jwt') problems.push(`mode must be "none" or "jwt", got ${JSON.stringify(mode)}`);

  let derived: string[] = [];
  if (mode === 'none' && sources.length > 0) {
    problems.push(`mode is "none" but ${sources.join(', ')} ${sources.length > 1 ? 'are' : 'is'} set: remove the key source or set mode "jwt"`);
  }
  if (mode === 'jwt') {
    if (sources.length === 0)
      problems.push('mode is "jwt" but no key source is set: give one of secret (TRIBUTARY_AUTH_SECRET), publicKey (TRIBUTARY_AUTH_PUBLIC_KEY) or jwksUrl (TRIBUTARY_AUTH_JWKS_URL)');
    if (sources.length > 1) problems.push(`give exactly one key source, not ${sources.join(' and ')}`);
  }
  if (mode === 'jwt' && sources.length === 1) {
    if (input.secret) {
      if (Buffer.byteLength(input.secret, 'utf8') < MIN_SECRET_BYTES) problems.push(`secret must be at least ${MIN_SECRET_BYTES} bytes (it is ${Buffer.byteLength(input.secret, 'utf8')})`);
      derived = [...HMAC_ALGORITHMS];
    } else if (input.publicKey) {
      const key = parsePublicKey(input.publicKey);
      const algs = typeof key === 'string' ? key : algorithmsForKey(key);
      if (typeof algs === 'string') problems.push(algs);
      else derived = algs;
    } else if (input.jwksUrl) {
      checkJwksUrl(input.jwksUrl, problems);
      derived = [...ASYMMETRIC_ALGORITHMS];
    }
  }

  const algorithms = input.algorithms && input.algorithms.length > 0 ? [...input.algorithms] : derived;
  if (mode === 'jwt') {
    for (const alg of algorithms) {
      if (alg.toLowerCase() === 'none') problems.push('algorithms may not contain "none": unsigned tokens are never accepted');
      else if (!KNOWN_ALGORITHMS.has(alg)) problems.push(`algorithm ${JSON.stringify(alg)} is unknown; use some of ${[...KNOWN_ALGORITHMS].join(', ')}`);
      else if (derived.length > 0 && !derived.includes(alg)) {
        // Mixing families is how key-confusion attacks start (an RSA public key used as an HMAC secret).
        problems.push(`algorithm ${alg} does not fit the configured ${sources[0]} (usable: ${derived.join(', ')})`);
      }
    }
  }

  const cfg: AuthConfig = {
    mode,
    ...(input.secret ? { secret: input.secret } : {}),
    ...(input.publicKey ? { publicKey: input.publicKey } : {}),
    ...(input.jwksUrl ? { jwksUrl: input.jwksUrl } : {}),
    ...(input.issuer ? { issuer: input.issuer } : {}),
    ...(input.audience ? { audience: input.audience } : {}),
    jwksCacheMs: input.jwksCacheMs ?? defaultOf('auth.jwksCacheMs'),
    jwksCooldownMs: input.jwksCooldownMs ?? defaultOf('auth.jwksCooldownMs'),
    jwksTimeoutMs: input.jwksTimeoutMs ?? defaultOf('auth.jwksTimeoutMs'),
    algorithms: mode === 'jwt' ? algorithms : [],
    clockToleranceSec: input.clockToleranceSec ?? defaultOf('auth.clockToleranceSec'),
    authTimeoutMs: input.authTimeoutMs ?? defaultOf('auth.authTimeoutMs'),
    allowTokensWithoutExp: input.allowTokensWithoutExp ?? defaultOf('auth.allowTokensWithoutExp'),
    maxTokenLifetimeSec: input.maxTokenLifetimeSec ?? defaultOf('auth.maxTokenLifetimeSec'),
    allowedOrigins: [...(input.allowedOrigins ?? [])],
  };
  checkDuration('jwksCacheMs', cfg.jwksCacheMs, 0, problems);
  checkDuration('jwksCooldownMs', cfg.jwksCooldownMs, 0, problems);
  if (!Number.isSafeInteger(cfg.jwksTimeoutMs) || cfg.jwksTimeoutMs <= 0) problems.push(`jwksTimeoutMs must be a positive integer, got ${String(cfg.jwksTimeoutMs)}`);
  checkDuration('clockToleranceSec', cfg.clockToleranceSec, 0, problems);
  if (cfg.clockToleranceSec > 300) problems.push(`clockToleranceSec ${cfg.clockToleranceSec} is more than 5 minutes: fix the clocks instead`);
  if (!Number.isSafeInteger(cfg.authTimeoutMs) || cfg.authTimeoutMs <= 0) problems.push(`authTimeoutMs must be a positive integer, got ${String(cfg.authTimeoutMs)}`);
  if (!Number.isSafeInteger(cfg.maxTokenLifetimeSec) || cfg.maxTokenLifetimeSec <= 0) problems.push(`maxTokenLifetimeSec must be a positive integer, got ${String(cfg.maxTokenLifetimeSec)}`);
  if (typeof cfg.allowTokensWithoutExp !== 'boolean') problems.push(`allowTokensWithoutExp must be true or false, got ${JSON.stringify(cfg.allowTokensWithoutExp)}`);

  for (const entry of cfg.allowedOrigins) {
    const p = originEntryProblem(entry);
    if (p) problems.push(p);
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return cfg;
}

/**
 * Lines the hub should log at start-up, loudest first: auth being off, or a
 * configuration that accepts more tokens than the operator probably meant.
 */
export function authConfigWarnings(cfg: AuthConfig): string[] {
  const out: string[] = [];
  if (cfg.mode === 'none') {
    out.push(
      'AUTH IS OFF: anyone who can reach this hub can produce to and consume from every topic and administer it. Set TRIBUTARY_AUTH_SECRET, TRIBUTARY_AUTH_PUBLIC_KEY or TRIBUTARY_AUTH_JWKS_URL before exposing it.',
    );
    return out;
  }
  if (cfg.allowTokensWithoutExp) {
    out.push(
      `TOKENS WITHOUT AN EXPIRY ARE ACCEPTED (auth.allowTokensWithoutExp): such a token, if leaked, works for ${cfg.maxTokenLifetimeSec} s (auth.maxTokenLifetimeSec) after its "iat", or after the hub first sees it when it has no "iat" — then again on every new first sight. Issue tokens with "exp" and turn this off.`,
    );
  }
  if (!cfg.audience) out.push('no audience configured: every token signed by the configured key is accepted, including ones issued for other services (set TRIBUTARY_AUTH_AUDIENCE)');
  if (!cfg.issuer && cfg.jwksUrl) out.push('no issuer configured for a JWKS key source (set TRIBUTARY_AUTH_ISSUER)');
  if (cfg.allowedOrigins.length === 0)
    out.push(
      'no allowedOrigins: clients without an Origin (servers, devices, the CLI) and pages the hub serves itself are served; browser pages of other origins are refused until listed in allowedOrigins (TRIBUTARY_ALLOWED_ORIGINS, --allowed-origins)',
    );
  if (cfg.allowedOrigins.includes('*')) out.push('allowedOrigins is "*": pages from any web origin may connect with a token they hold');
  return out;
}
