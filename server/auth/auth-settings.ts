/**
 * The names every security setting goes by — a CLI flag, a TRIBUTARY_*
 * environment variable and a config-file key — in one table, and the merge
 * of the three into an AuthConfigInput (flags over environment over file).
 *
 * The CLI registers one option per row (`AUTH_SETTINGS`), passes what
 * commander parsed, process.env and the parsed config file to
 * `authInputFromSources`, then calls resolveAuthConfig on the result.
 */
import fs from 'node:fs';
import { AuthConfigError, type AuthConfigInput, type AuthLimits } from './auth-config.ts';

type Kind = 'mode' | 'string' | 'pem' | 'list' | 'int' | 'bool';

export interface AuthSetting {
  /** Dotted key in the config file (`auth.secret`, `limits.maxConnections`). */
  key: string;
  env: string;
  flag: string;
  kind: Kind;
  description: string;
}

const row = (key: string, env: string, flag: string, kind: Kind, description: string): AuthSetting => ({ key, env, flag, kind, description });

export const AUTH_SETTINGS: readonly AuthSetting[] = [
  row('auth.mode', 'TRIBUTARY_AUTH', '--auth', 'mode', '"jwt" or "none"; jwt when a key source is set, none otherwise'),
  row('auth.secret', 'TRIBUTARY_AUTH_SECRET', '--auth-secret', 'string', 'HMAC secret (HS256/384/512), at least 32 bytes'),
  row('auth.publicKey', 'TRIBUTARY_AUTH_PUBLIC_KEY', '--auth-public-key', 'pem', 'PEM public key (SPKI), or the path of a file holding one'),
  row('auth.jwksUrl', 'TRIBUTARY_AUTH_JWKS_URL', '--auth-jwks-url', 'string', 'https URL of a JSON Web Key Set'),
  row('auth.jwksCacheMs', 'TRIBUTARY_AUTH_JWKS_CACHE_MS', '--auth-jwks-cache-ms', 'int', 'how long fetched JWKS keys are used before a refetch'),
  row('auth.jwksCooldownMs', 'TRIBUTARY_AUTH_JWKS_COOLDOWN_MS', '--auth-jwks-cooldown-ms', 'int', 'minimum time between refetches caused by an unknown kid'),
  row('auth.jwksTimeoutMs', 'TRIBUTARY_AUTH_JWKS_TIMEOUT_MS', '--auth-jwks-timeout-ms', 'int', 'timeout of one JWKS request'),
  row('auth.issuer', 'TRIBUTARY_AUTH_ISSUER', '--auth-issuer', 'string', 'required "iss"'),
  row('auth.audience', 'TRIBUTARY_AUTH_AUDIENCE', '--auth-audience', 'string', 'required "aud"'),
  row('auth.algorithms', 'TRIBUTARY_AUTH_ALGORITHMS', '--auth-algorithms', 'list', 'accepted algorithms, comma-separated; derived from the key source when unset'),
  row('auth.clockToleranceSec', 'TRIBUTARY_AUTH_CLOCK_TOLERANCE_SEC', '--auth-clock-tolerance-sec', 'int', 'allowed clock skew for exp and nbf'),
  row('auth.allowTokensWithoutExp', 'TRIBUTARY_AUTH_ALLOW_TOKENS_WITHOUT_EXP', '--auth-allow-tokens-without-exp', 'bool', 'accept tokens without "exp" (refused by default; logged loudly at start-up)'),
  row('auth.maxTokenLifetimeSec', 'TRIBUTARY_AUTH_MAX_TOKEN_LIFETIME_SEC', '--auth-max-token-lifetime-sec', 'int', 'no token is honoured longer than this after its "iat" (after the hub first sees it, without "iat"), whatever its "exp"'),
  row('auth.authTimeoutMs', 'TRIBUTARY_AUTH_TIMEOUT_MS', '--auth-timeout-ms', 'int', 'a WebSocket must authenticate within this time'),
  row('allowedOrigins', 'TRIBUTARY_ALLOWED_ORIGINS', '--allowed-origins', 'list', 'browser origins allowed (WebSocket upgrades and CORS), comma-separated, or *'),
  row('limits.maxConnections', 'TRIBUTARY_MAX_CONNECTIONS', '--max-connections', 'int', 'open WebSocket connections on the hub (more are closed with 4429 TOO_MANY_CONNECTIONS)'),
  row('limits.maxConnectionsPerSubject', 'TRIBUTARY_MAX_CONNECTIONS_PER_SUBJECT', '--max-connections-per-subject', 'int', 'open connections per token subject'),
  row('limits.connectionsPerSecPerAddress', 'TRIBUTARY_CONNECTIONS_PER_SEC_PER_ADDRESS', '--connections-per-sec-per-address', 'int', 'new WebSocket connections per second per remote address (more: upgrade refused with 429 RATE_LIMITED and Retry-After)'),
  row('limits.connectionsBurstPerAddress', 'TRIBUTARY_CONNECTIONS_BURST_PER_ADDRESS', '--connections-burst-per-address', 'int', 'burst of new connections per remote address'),
  row('limits.produceBytesPerSec', 'TRIBUTARY_PRODUCE_BYTES_PER_SEC', '--produce-bytes-per-sec', 'int', 'produce rate per connection, bytes'),
  row('limits.produceBytesBurst', 'TRIBUTARY_PRODUCE_BYTES_BURST', '--produce-bytes-burst', 'int', 'produce burst per connection, bytes'),
  row('limits.produceEventsPerSec', 'TRIBUTARY_PRODUCE_EVENTS_PER_SEC', '--produce-events-per-sec', 'int', 'produce rate per connection, records'),
  row('limits.produceEventsBurst', 'TRIBUTARY_PRODUCE_EVENTS_BURST', '--produce-events-burst', 'int', 'produce burst per connection, records'),
  row('limits.maxSubscriptionsPerConnection', 'TRIBUTARY_MAX_SUBSCRIPTIONS_PER_CONNECTION', '--max-subscriptions-per-connection', 'int', 'subscriptions open on one connection'),
  row('limits.maxInFlightPerConnection', 'TRIBUTARY_MAX_IN_FLIGHT_PER_CONNECTION', '--max-in-flight-per-connection', 'int', 'requests awaiting a reply on one connection'),
  row('limits.idleTimeoutMs', 'TRIBUTARY_IDLE_TIMEOUT_MS', '--idle-timeout-ms', 'int', 'close a WebSocket silent for this long (4408 IDLE_TIMEOUT; the hub pings first)'),
  row('limits.httpProduceBytesPerSec', 'TRIBUTARY_HTTP_PRODUCE_BYTES_PER_SEC', '--http-produce-bytes-per-sec', 'int', 'HTTP produce rate per token subject, bytes'),
  row('limits.httpProduceBytesBurst', 'TRIBUTARY_HTTP_PRODUCE_BYTES_BURST', '--http-produce-bytes-burst', 'int', 'HTTP produce burst per token subject, bytes'),
  row('limits.httpProduceEventsPerSec', 'TRIBUTARY_HTTP_PRODUCE_EVENTS_PER_SEC', '--http-produce-events-per-sec', 'int', 'HTTP produce rate per token subject, records'),
  row('limits.httpProduceEventsBurst', 'TRIBUTARY_HTTP_PRODUCE_EVENTS_BURST', '--http-produce-events-burst', 'int', 'HTTP produce burst per token subject, records'),
];

/** The property commander gives a flag: `--auth-jwks-url` → `authJwksUrl`. */
export function flagProperty(flag: string): string {
  return flag.replace(/^--/, '').replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
}

export interface SettingSources {
  /** The parsed config file (YAML/JSON), whole: `auth`, `allowedOrigins` and `limits` are read from it. */
  file?: unknown;
  env?: Record<string, string | undefined>;
  /** Options as commander parsed them (camelCase properties). */
  flags?: Record<string, unknown>;
}

function fromFile(file: unknown, key: string): unknown {
  let node: unknown = file;
  for (const part of key.split('.')) {
    if (typeof node !== 'object' || node === null || Array.isArray(node)) return undefined;
    node = (node as Record<string, unknown>)[part];
  }
  return node;
}

function parse(s: AuthSetting, value: unknown, from: string, problems: string[]): unknown {
  const where = `${s.key} (from ${from})`;
  switch (s.kind) {
    case 'mode':
      if (value === 'none' || value === 'jwt') return value;
      problems.push(`${where} must be "none" or "jwt", got ${JSON.stringify(value)}`);
      return undefined;
    case 'string':
      if (typeof value === 'string') return value.trim();
      problems.push(`${where} must be a string`);
      return undefined;
    case 'pem': {
      if (typeof value !== 'string') {
        problems.push(`${where} must be PEM text or a file path`);
        return undefined;
      }
      // Environment variables rarely hold real newlines; accept `\n` escapes.
      const text = value.includes('-----BEGIN') ? value.replace(/\\n/g, '\n') : readPem(value.trim(), where, problems);
      return text;
    }
    case 'list':
      if (Array.isArray(value) && value.every((v) => typeof v === 'string')) return value.map((v: string) => v.trim()).filter(Boolean);
      if (typeof value === 'string') return value.split(',').map((v) => v.trim()).filter(Boolean);
      problems.push(`${where} must be a comma-separated string or a list of strings`);
      return undefined;
    case 'bool':
      if (value === true || value === 'true' || value === '1') return true;
      if (value === false || value === 'false' || value === '0') return false;
      problems.push(`${where} must be true or false, got ${JSON.stringify(value)}`);
      return undefined;
    case 'int': {
      const n = typeof value === 'number' ? value : typeof value === 'string' && /^\s*\d+\s*$/.test(value) ? Number(value) : NaN;
      if (Number.isSafeInteger(n) && n >= 0) return n;
      problems.push(`${where} must be a non-negative integer, got ${JSON.stringify(value)}`);
      return undefined;
    }
  }
}

function readPem(path: string, where: string, problems: string[]): string | undefined {
  try {
    return fs.readFileSync(path, 'utf8');
  } catch (err) {
    problems.push(`${where} is neither PEM text nor a readable file (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
    return undefined;
  }
}

/**
 * Merge the three sources into an AuthConfigInput (flags win over the
 * environment, which wins over the file). Throws AuthConfigError listing
 * every value that does not parse; resolveAuthConfig checks the rest.
 */
export function authInputFromSources(sources: SettingSources): AuthConfigInput {
  const problems: string[] = [];
  const input: Record<string, unknown> = {};
  const limits: Partial<AuthLimits> = {};
  for (const s of AUTH_SETTINGS) {
    const flagValue = sources.flags?.[flagProperty(s.flag)];
    const envValue = sources.env?.[s.env];
    const fileValue = fromFile(sources.file, s.key);
    let value: unknown;
    if (flagValue !== undefined) value = parse(s, flagValue, s.flag, problems);
    else if (envValue !== undefined && envValue !== '') value = parse(s, envValue, s.env, problems);
    else if (fileValue !== undefined && fileValue !== null) value = parse(s, fileValue, `config key ${s.key}`, problems);
    if (value === undefined) continue;
    const name = s.key.slice(s.key.lastIndexOf('.') + 1);
    if (s.key.startsWith('limits.')) (limits as Record<string, unknown>)[name] = value;
    else input[name] = value;
  }
  if (problems.length > 0) throw new AuthConfigError(problems);
  return { ...(input as AuthConfigInput), ...(Object.keys(limits).length > 0 ? { limits } : {}) };
}
