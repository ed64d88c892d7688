/**
 * The worker's configuration: wrangler.toml [vars] and secrets, read once per
 * environment object, with defaults and validation. Every name, default and
 * bound is here and in docs/edge.md.
 */
import { createLocalJWKSet, type JSONWebKeySet, type JWTVerifyGetKey } from 'jose';
import { TributaryError } from '../protocol/errors.ts';
import { LIMITS } from '../protocol/limits.ts';
import { utf8 } from '../protocol/record.ts';
import { parseTopicPattern, type TopicPattern } from '../protocol/topic-patterns.ts';

/** The bindings the worker reads. Vars may arrive as strings or (from TOML) numbers/objects. */
export interface Env {
  HUB_URL?: string;
  /** Secret: the worker's own bearer token for the hub (sent when set). */
  HUB_TOKEN?: string;
  HUB_TIMEOUT_MS?: string | number;
  /** Secret: HMAC key for device tokens (HS256/384/512), at least 32 bytes. */
  DEVICE_JWT_SECRET?: string;
  /** A JWKS (JSON text or an object) with the public keys of device tokens. */
  DEVICE_JWKS?: string | JSONWebKeySet;
  DEVICE_JWT_ISSUER?: string;
  DEVICE_JWT_AUDIENCE?: string;
  DEVICE_CLOCK_TOLERANCE_S?: string | number;
  ALLOWED_TOPICS?: string;
  MAX_BODY_BYTES?: string | number;
  MAX_READINGS_PER_REQUEST?: string | number;
  MAX_READING_BYTES?: string | number;
  RETRY_AFTER_S?: string | number;
}

export interface EdgeConfig {
  hubUrl: string;
  hubToken: string | undefined;
  hubTimeoutMs: number;
  /** HMAC key for HS* device tokens, when DEVICE_JWT_SECRET is set. */
  deviceSecret: Uint8Array | undefined;
  /** Key lookup for asymmetric device tokens, when DEVICE_JWKS is set. */
  deviceJwks: JWTVerifyGetKey | undefined;
  deviceIssuer: string | undefined;
  deviceAudience: string | undefined;
  deviceClockToleranceS: number;
  allowedTopics: TopicPattern[];
  maxBodyBytes: number;
  maxReadingsPerRequest: number;
  maxReadingBytes: number;
  retryAfterS: number;
}

export const DEFAULTS = {
  HUB_URL: 'http://127.0.0.1:8080',
  HUB_TIMEOUT_MS: 10_000,
  DEVICE_CLOCK_TOLERANCE_S: 30,
  ALLOWED_TOPICS: '*',
  MAX_BODY_BYTES: 1024 * 1024,
  MAX_READINGS_PER_REQUEST: 1000,
  MAX_READING_BYTES: 16 * 1024,
  RETRY_AFTER_S: 2,
} as const;

/** HS256 needs a key at least as long as its output (RFC 7518 §3.2). */
const MIN_SECRET_BYTES = 32;
/**
 * Bodies are bounded well under the hub's frame limit: the forwarded request
 * adds a key and two headers per reading, and CBOR readings grow when written
 * as JSON.
 */
const MAX_BODY_BYTES_BOUND = 2 * 1024 * 1024;

function bad(name: string, why: string): TributaryError {
  // NOT_READY (503, retriable): a misconfigured worker is the operator's to fix;
  // devices should keep their readings and retry, not drop them.
  return new TributaryError('NOT_READY', `edge worker misconfigured: ${name} ${why}`);
}

function intVar(env: Env, name: keyof typeof DEFAULTS & keyof Env, min: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return DEFAULTS[name] as number;
  const n = typeof raw === 'number' ? raw : /^\s*\d+\s*$/.test(String(raw)) ? Number(raw) : NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) throw bad(name, `must be an integer in [${min}, ${max}], got ${JSON.stringify(raw)}`);
  return n;
}

function optionalString(env: Env, name: 'DEVICE_JWT_ISSUER' | 'DEVICE_JWT_AUDIENCE' | 'HUB_TOKEN'): string | undefined {
  const v = env[name];
  if (v === undefined || v === '') return undefined;
  if (typeof v !== 'string') throw bad(name, 'must be a string');
  return v;
}

function parseHubUrl(env: Env): string {
  const raw = env.HUB_URL === undefined || env.HUB_URL === '' ? DEFAULTS.HUB_URL : env.HUB_URL;
  let url: URL;
  try {
    url = new URL(String(raw));
  } catch {
    throw bad('HUB_URL', `is not a URL: ${JSON.stringify(raw)}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw bad('HUB_URL', 'must be http: or https:');
  if (url.search || url.hash) throw bad('HUB_URL', 'must not carry a query or fragment');
  return url.href.replace(/\/+$/, '');
}

function parseAllowedTopics(env: Env): TopicPattern[] {
  const raw = env.ALLOWED_TOPICS === undefined ? DEFAULTS.ALLOWED_TOPICS : String(env.ALLOWED_TOPICS);
  const parts = raw
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
  if (parts.length === 0) throw bad('ALLOWED_TOPICS', 'lists no pattern (use "*" to allow every topic)');
  return parts.map((p) => {
    const pattern = parseTopicPattern(p);
    if (!pattern) throw bad('ALLOWED_TOPICS', `has an invalid pattern ${JSON.stringify(p)} (a topic name, "prefix.*" or "*")`);
    return pattern;
  });
}

function parseDeviceKeys(env: Env): { secret: Uint8Array | undefined; jwks: JWTVerifyGetKey | undefined } {
  let secret: Uint8Array | undefined;
  if (env.DEVICE_JWT_SECRET !== undefined && env.DEVICE_JWT_SECRET !== '') {
    secret = utf8(String(env.DEVICE_JWT_SECRET));
    if (secret.length < MIN_SECRET_BYTES) throw bad('DEVICE_JWT_SECRET', `must be at least ${MIN_SECRET_BYTES} bytes`);
  }
  let jwks: JWTVerifyGetKey | undefined;
  if (env.DEVICE_JWKS !== undefined && env.DEVICE_JWKS !== '') {
    let set: unknown = env.DEVICE_JWKS;
    if (typeof set === 'string') {
      try {
        set = JSON.parse(set);
      } catch {
        throw bad('DEVICE_JWKS', 'is not valid JSON');
      }
    }
    const keys = (set as { keys?: unknown } | null)?.keys;
    if (!Array.isArray(keys) || keys.length === 0) throw bad('DEVICE_JWKS', 'must be a JWKS: {"keys": [...]} with at least one key');
    try {
      jwks = createLocalJWKSet(set as JSONWebKeySet);
    } catch (err) {
      throw bad('DEVICE_JWKS', `is not a usable JWKS (${err instanceof Error ? err.message : String(err)})`);
    }
  }
  if (!secret && !jwks) throw bad('DEVICE_JWT_SECRET / DEVICE_JWKS', 'neither is set: the worker cannot verify device tokens');
  return { secret, jwks };
}

function parseConfig(env: Env): EdgeConfig {
  const keys = parseDeviceKeys(env);
  return {
    hubUrl: parseHubUrl(env),
    hubToken: optionalString(env, 'HUB_TOKEN'),
    hubTimeoutMs: intVar(env, 'HUB_TIMEOUT_MS', 100, 120_000),
    deviceSecret: keys.secret,
    deviceJwks: keys.jwks,
    deviceIssuer: optionalString(env, 'DEVICE_JWT_ISSUER'),
    deviceAudience: optionalString(env, 'DEVICE_JWT_AUDIENCE'),
    deviceClockToleranceS: intVar(env, 'DEVICE_CLOCK_TOLERANCE_S', 0, 600),
    allowedTopics: parseAllowedTopics(env),
    maxBodyBytes: intVar(env, 'MAX_BODY_BYTES', 64, MAX_BODY_BYTES_BOUND),
    maxReadingsPerRequest: intVar(env, 'MAX_READINGS_PER_REQUEST', 1, LIMITS.maxRecordsPerBatch),
    maxReadingBytes: intVar(env, 'MAX_READING_BYTES', 16, LIMITS.maxValueBytes),
    retryAfterS: intVar(env, 'RETRY_AFTER_S', 1, 3600),
  };
}

// The runtime hands the same env object to every request of an isolate, so the
// parsed config (and the imported JWKS) is built once per isolate, not per request.
const cache = new WeakMap<object, EdgeConfig | TributaryError>();

/** The config for this env, parsed once; throws the same NOT_READY error each time when it is invalid. */
export function configFor(env: Env): EdgeConfig {
  let c = cache.get(env);
  if (c === undefined) {
    try {
      c = parseConfig(env);
    } catch (err) {
      if (!(err instanceof TributaryError)) throw err;
      c = err;
    }
    cache.set(env, c);
  }
  if (c instanceof TributaryError) throw c;
  return c;
}
