/**
 * Every hub setting, its default and its unit, in one place.
 *
 * A setting has one name in each source: a config-file key (`topic.retentionMs`,
 * nested in YAML/JSON as `topic: {retentionMs: ...}`), an environment variable
 * (`TRIBUTARY_TOPIC_RETENTION_MS`) and a flag (`--topic-retention-ms`).
 * Precedence: flag, then environment, then file, then default.
 * docs/configuration.md is the table of this file.
 *
 * The security settings (authentication, origins, connection limits and
 * quotas) are the other half of the one table: AUTH_SETTINGS in
 * server/auth/auth-settings.ts, with the same three sources and the same
 * precedence. loadConfig resolves both; no setting appears in both tables.
 */
import fs from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { LIMITS } from '../protocol/limits.ts';
import { AUTH_SETTINGS, AuthConfigError, authInputFromSources, flagProperty, resolveAuthConfig, type AuthConfig } from './auth/index.ts';
import { DEFAULT_TOPIC_CONFIG } from './storage/log-store.ts';

type Kind = 'int' | 'bool' | 'string' | 'enum';

export interface SettingSpec {
  kind: Kind;
  default: number | boolean | string | undefined;
  doc: string;
  min?: number;
  max?: number;
  values?: readonly string[];
  /** Hidden from --help (test knobs). */
  hidden?: boolean;
}

const MiB = 1024 * 1024;

/** The settings table. Keys are config-file keys; env and flag names derive from them. */
export const SETTINGS = {
  host: { kind: 'string', default: '127.0.0.1', doc: 'address to bind; a non-loopback address with auth off needs `insecure`' },
  port: { kind: 'int', default: 8080, min: 0, max: 65535, doc: 'TCP port for HTTP and WebSocket; 0 picks a free one (the real one is printed)' },
  data: { kind: 'string', default: './data', doc: 'data directory (topics, segments, the lock file); unused with `engine`' },
  engine: { kind: 'string', default: undefined, doc: 'keep the log in NATS JetStream instead of `data`: nats://host:port[,nats://host:port…] (hubs over one cluster share every topic and keep no state of their own)' },
  insecure: { kind: 'bool', default: false, doc: 'allow binding a non-loopback address while authentication is off' },
  tlsCert: { kind: 'string', default: undefined, doc: 'PEM certificate (chain) file: serve https:// and wss:// (needs tlsKey)' },
  tlsKey: { kind: 'string', default: undefined, doc: 'PEM private key file of tlsCert' },
  allowFallbackTransport: { kind: 'bool', default: false, doc: "start even when uWebSockets.js's native binary cannot load and its slow pure-Node fallback is active" },
  logLevel: { kind: 'enum', default: 'info', values: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], doc: 'pino log level' },

  autoCreateTopics: { kind: 'bool', default: undefined, doc: 'create a topic on its first produce or subscribe (default: on while auth is off, off with auth)' },
  defaultPartitions: { kind: 'int', default: 1, min: 1, max: LIMITS.maxPartitions, doc: 'partition count of auto-created topics and of POST /v1/topics without `partitions`' },
  maxFutureTimestampMs: { kind: 'int', default: 3_600_000, min: 0, doc: 'a record timestamp further than this in the future is refused (TIMESTAMP_IN_FUTURE)' },

  maxFrameBytes: { kind: 'int', default: LIMITS.maxFrameBytes, min: 1024, max: LIMITS.maxFrameBytes, doc: 'largest WebSocket frame accepted; larger ones close the connection with 4413' },
  maxHttpBodyBytes: { kind: 'int', default: 8 * MiB, min: 1024, max: 64 * MiB, doc: 'largest HTTP request body; larger ones get 413 BODY_TOO_LARGE' },

  sendHighWaterBytes: { kind: 'int', default: 1 * MiB, min: 16 * 1024, doc: "a connection whose send buffer holds more than this is paused: no records frames until uWS's drain" },
  maxBufferedBytesPerConnection: { kind: 'int', default: 16 * MiB, min: 64 * 1024, doc: 'hard cap of one connection’s send buffer; reaching it closes with 4429 SLOW_CONSUMER' },
  slowConsumerTimeoutMs: { kind: 'int', default: 30_000, min: 100, doc: 'a connection paused (above sendHighWaterBytes) for longer than this is closed with 4429 SLOW_CONSUMER' },
  subscriptionReadBytes: { kind: 'int', default: 256 * 1024, min: 1024, max: LIMITS.maxBatchBytes, doc: 'bytes of batches read per records frame (at least one whole batch)' },

  httpReadDefaultRecords: { kind: 'int', default: 100, min: 1, doc: 'GET …/records without `limit` returns at most this many records' },
  httpReadMaxRecords: { kind: 'int', default: 1000, min: 1, doc: 'cap on `limit` of GET …/records' },
  httpReadMaxBytes: { kind: 'int', default: 4 * MiB, min: 1024, doc: 'cap on `maxBytes` of GET …/records (batch bytes read)' },

  shutdownTimeoutMs: { kind: 'int', default: 10_000, min: 0, doc: 'on SIGTERM/SIGINT, wait at most this long for in-flight appends before closing storage' },

  'topic.retentionMs': { kind: 'int', default: DEFAULT_TOPIC_CONFIG.retentionMs, min: -1, doc: 'default topic retention by age (-1 keeps forever)' },
  'topic.retentionBytes': { kind: 'int', default: DEFAULT_TOPIC_CONFIG.retentionBytes, min: -1, doc: 'default retention by size per partition (-1 = no limit)' },
  'topic.cleanupPolicy': { kind: 'enum', default: DEFAULT_TOPIC_CONFIG.cleanupPolicy, values: ['delete', 'compact'], doc: 'default cleanup policy' },
  'topic.deleteRetentionMs': { kind: 'int', default: DEFAULT_TOPIC_CONFIG.deleteRetentionMs, min: 0, doc: 'default time a tombstone survives compaction' },
  'topic.fsync': { kind: 'enum', default: DEFAULT_TOPIC_CONFIG.fsync, values: ['always', 'interval', 'never'], doc: 'default durability: `always` acks after group-committed fdatasync' },
  'topic.fsyncIntervalMs': { kind: 'int', default: DEFAULT_TOPIC_CONFIG.fsyncIntervalMs, min: 1, doc: 'fsync period for `interval` topics' },
  'topic.segmentBytes': { kind: 'int', default: DEFAULT_TOPIC_CONFIG.segmentBytes, min: 1024, doc: 'default segment size before rolling' },
  'topic.segmentMs': { kind: 'int', default: DEFAULT_TOPIC_CONFIG.segmentMs, min: -1, doc: 'default segment age before rolling (-1 = never by age)' },
  'topic.replicas': { kind: 'int', default: DEFAULT_TOPIC_CONFIG.replicas, min: 0, max: 5, doc: 'JetStream engine: copies of each partition (0 = 3 on a cluster of three or more nodes, else 1)' },

  'storage.maxOpenFiles': { kind: 'int', default: undefined, min: 8, doc: 'max open segment files across partitions (engine default when unset)' },
  'storage.tailCacheBytes': { kind: 'int', default: undefined, min: 0, doc: 'bytes of newest batches kept in memory per partition for live tailing (engine default when unset)' },
  'storage.maxProducersPerPartition': { kind: 'int', default: undefined, min: 1, doc: 'producer ids tracked per partition for idempotence (engine default when unset)' },
  'storage.cleanupIntervalMs': { kind: 'int', default: undefined, min: 100, doc: 'how often retention and compaction run (engine default when unset)' },

  testRecoveryDelayMs: { kind: 'int', default: 0, min: 0, hidden: true, doc: 'test knob: wait this long before storage recovery so /healthz 503 can be observed' },
} as const satisfies Record<string, SettingSpec>;

export type SettingKey = keyof typeof SETTINGS;

export interface HubConfig {
  host: string;
  port: number;
  data: string;
  /** NATS server URLs when the log lives in JetStream (`--engine`), else null (the embedded engine in `data`). */
  engine: string[] | null;
  insecure: boolean;
  allowFallbackTransport: boolean;
  logLevel: string;
  autoCreateTopics: boolean;
  defaultPartitions: number;
  maxFutureTimestampMs: number;
  maxFrameBytes: number;
  maxHttpBodyBytes: number;
  sendHighWaterBytes: number;
  maxBufferedBytesPerConnection: number;
  slowConsumerTimeoutMs: number;
  subscriptionReadBytes: number;
  httpReadDefaultRecords: number;
  httpReadMaxRecords: number;
  httpReadMaxBytes: number;
  shutdownTimeoutMs: number;
  topic: {
    retentionMs: number;
    retentionBytes: number;
    cleanupPolicy: 'delete' | 'compact';
    deleteRetentionMs: number;
    fsync: 'always' | 'interval' | 'never';
    fsyncIntervalMs: number;
    segmentBytes: number;
    segmentMs: number;
    replicas: number;
  };
  storage: {
    maxOpenFiles?: number;
    tailCacheBytes?: number;
    maxProducersPerPartition?: number;
    cleanupIntervalMs?: number;
  };
  testRecoveryDelayMs: number;
  /** Certificate and key files when serving TLS (uWS SSLApp), else null. */
  tls: { certFile: string; keyFile: string } | null;
  /** Security settings (AUTH_SETTINGS): authentication, origins, limits and quotas. */
  auth: AuthConfig;
  /** Whether tokens are checked (`auth.mode` is jwt). */
  authEnabled: boolean;
}

/** `topic.retentionMs` → `TRIBUTARY_TOPIC_RETENTION_MS`. */
export function envNameOf(key: string): string {
  return 'TRIBUTARY_' + key.replace(/\./g, '_').replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase();
}

/** `topic.retentionMs` → `topic-retention-ms` (the flag without its dashes). */
export function flagNameOf(key: string): string {
  return key.replace(/\./g, '-').replace(/([a-z0-9])([A-Z])/g, '$1-$2').toLowerCase();
}

/** The error of a bad setting: names the source so an operator can find it. */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

function parseValue(key: string, spec: SettingSpec, raw: unknown, source: string): number | boolean | string {
  const where = `${source}: ${key}`;
  switch (spec.kind) {
    case 'int': {
      let n: number;
      if (typeof raw === 'number') n = raw;
      else if (typeof raw === 'string' && /^-?\d+$/.test(raw.trim())) n = Number(raw.trim());
      else throw new ConfigError(`${where} must be an integer, got ${JSON.stringify(raw)}`);
      if (!Number.isSafeInteger(n)) throw new ConfigError(`${where} must be an integer, got ${JSON.stringify(raw)}`);
      if (spec.min !== undefined && n < spec.min) throw new ConfigError(`${where} must be >= ${spec.min}, got ${n}`);
      if (spec.max !== undefined && n > spec.max) throw new ConfigError(`${where} must be <= ${spec.max}, got ${n}`);
      return n;
    }
    case 'bool': {
      if (typeof raw === 'boolean') return raw;
      if (typeof raw === 'string') {
        const s = raw.trim().toLowerCase();
        if (['1', 'true', 'yes', 'on'].includes(s)) return true;
        if (['0', 'false', 'no', 'off'].includes(s)) return false;
      }
      throw new ConfigError(`${where} must be true or false, got ${JSON.stringify(raw)}`);
    }
    case 'enum':
      if (typeof raw === 'string' && spec.values!.includes(raw)) return raw;
      throw new ConfigError(`${where} must be one of ${spec.values!.join(', ')}, got ${JSON.stringify(raw)}`);
    case 'string':
      if (typeof raw === 'string' && raw.length > 0) return raw;
      if (typeof raw === 'number') return String(raw);
      throw new ConfigError(`${where} must be a non-empty string, got ${JSON.stringify(raw)}`);
  }
}

/** Flattens `{topic: {retentionMs: 1}}` into `{'topic.retentionMs': 1}`. */
function flatten(obj: Record<string, unknown>, prefix = '', out: Record<string, unknown> = {}): Record<string, unknown> {
  for (const [k, v] of Object.entries(obj)) {
    const key = prefix ? `${prefix}.${k}` : k;
    if (typeof v === 'object' && v !== null && !Array.isArray(v) && !(key in SETTINGS)) flatten(v as Record<string, unknown>, key, out);
    else out[key] = v;
  }
  return out;
}

export function readConfigFile(file: string): Record<string, unknown> {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new ConfigError(`cannot read config file ${file}: ${(e as Error).message}`);
  }
  let doc: unknown;
  try {
    // YAML is a superset of JSON: one parser for both.
    doc = YAML.parse(text);
  } catch (e) {
    throw new ConfigError(`config file ${file} is not valid YAML/JSON: ${(e as Error).message}`);
  }
  if (doc === null || doc === undefined) return {};
  if (typeof doc !== 'object' || Array.isArray(doc)) throw new ConfigError(`config file ${file} must hold a map of settings`);
  return flatten(doc as Record<string, unknown>);
}

export interface ConfigSources {
  /** Flag values by setting key, of SETTINGS or AUTH_SETTINGS (only flags the user gave). */
  flags?: Partial<Record<string, unknown>>;
  env?: NodeJS.ProcessEnv;
  /** Path of a YAML or JSON config file. */
  file?: string;
}

/** Resolves every setting from its sources. Throws ConfigError naming the source of a bad value. */
export function loadConfig(sources: ConfigSources = {}): HubConfig {
  const env = sources.env ?? process.env;
  const fromFile = sources.file ? readConfigFile(sources.file) : {};
  const fileName = sources.file ? path.basename(sources.file) : '';
  for (const key of Object.keys(fromFile)) {
    if (!(key in SETTINGS) && !AUTH_KEYS.has(key)) throw new ConfigError(`config file ${fileName}: unknown setting ${JSON.stringify(key)}`);
  }
  const values: Record<string, unknown> = {};
  for (const [key, spec] of Object.entries(SETTINGS) as Array<[string, SettingSpec]>) {
    const flag = sources.flags?.[key];
    const envName = envNameOf(key);
    let v: unknown = spec.default;
    if (flag !== undefined) v = parseValue(key, spec, flag, `flag --${flagNameOf(key)}`);
    else if (env[envName] !== undefined && env[envName] !== '') v = parseValue(key, spec, env[envName], `env ${envName}`);
    else if (fromFile[key] !== undefined && fromFile[key] !== null) v = parseValue(key, spec, fromFile[key], `config file ${fileName}`);
    values[key] = v;
  }
  const auth = resolveSecurity(sources.flags ?? {}, env, fromFile);
  const authEnabled = auth.mode === 'jwt';
  const cfg: HubConfig = {
    host: values.host as string,
    port: values.port as number,
    data: path.resolve(values.data as string),
    engine: engineOf(values.engine as string | undefined),
    insecure: values.insecure as boolean,
    allowFallbackTransport: values.allowFallbackTransport as boolean,
    logLevel: values.logLevel as string,
    autoCreateTopics: (values.autoCreateTopics as boolean | undefined) ?? !authEnabled,
    defaultPartitions: values.defaultPartitions as number,
    maxFutureTimestampMs: values.maxFutureTimestampMs as number,
    maxFrameBytes: values.maxFrameBytes as number,
    maxHttpBodyBytes: values.maxHttpBodyBytes as number,
    sendHighWaterBytes: values.sendHighWaterBytes as number,
    maxBufferedBytesPerConnection: values.maxBufferedBytesPerConnection as number,
    slowConsumerTimeoutMs: values.slowConsumerTimeoutMs as number,
    subscriptionReadBytes: values.subscriptionReadBytes as number,
    httpReadDefaultRecords: values.httpReadDefaultRecords as number,
    httpReadMaxRecords: values.httpReadMaxRecords as number,
    httpReadMaxBytes: values.httpReadMaxBytes as number,
    shutdownTimeoutMs: values.shutdownTimeoutMs as number,
    topic: {
      retentionMs: values['topic.retentionMs'] as number,
      retentionBytes: values['topic.retentionBytes'] as number,
      cleanupPolicy: values['topic.cleanupPolicy'] as 'delete' | 'compact',
      deleteRetentionMs: values['topic.deleteRetentionMs'] as number,
      fsync: values['topic.fsync'] as 'always' | 'interval' | 'never',
      fsyncIntervalMs: values['topic.fsyncIntervalMs'] as number,
      segmentBytes: values['topic.segmentBytes'] as number,
      segmentMs: values['topic.segmentMs'] as number,
      replicas: values['topic.replicas'] as number,
    },
    storage: {},
    testRecoveryDelayMs: values.testRecoveryDelayMs as number,
    tls: tlsOf(values.tlsCert as string | undefined, values.tlsKey as string | undefined),
    auth,
    authEnabled,
  };
  for (const k of ['maxOpenFiles', 'tailCacheBytes', 'maxProducersPerPartition', 'cleanupIntervalMs'] as const) {
    const v = values[`storage.${k}`];
    if (v !== undefined) cfg.storage[k] = v as number;
  }
  if (cfg.sendHighWaterBytes >= cfg.maxBufferedBytesPerConnection) {
    throw new ConfigError(`sendHighWaterBytes (${cfg.sendHighWaterBytes}) must be below maxBufferedBytesPerConnection (${cfg.maxBufferedBytesPerConnection})`);
  }
  return cfg;
}

/** Config-file keys of the security settings (`auth.secret`, `limits.maxConnections`, …). */
const AUTH_KEYS: ReadonlySet<string> = new Set(AUTH_SETTINGS.map((s) => s.key));

/**
 * The security half of the table: AUTH_SETTINGS read from the same flags,
 * environment and (flattened) file, then checked by resolveAuthConfig. Its
 * problems become one ConfigError listing them all.
 */
function resolveSecurity(flags: Partial<Record<string, unknown>>, env: NodeJS.ProcessEnv, fromFile: Record<string, unknown>): AuthConfig {
  const authFlags: Record<string, unknown> = {};
  const file: Record<string, unknown> = {};
  for (const s of AUTH_SETTINGS) {
    if (flags[s.key] !== undefined) authFlags[flagProperty(s.flag)] = flags[s.key];
    if (fromFile[s.key] === undefined) continue;
    // authInputFromSources reads the file nested, as written in YAML.
    const parts = s.key.split('.');
    let node = file;
    for (const part of parts.slice(0, -1)) node = (node[part] ??= {}) as Record<string, unknown>;
    node[parts[parts.length - 1]] = fromFile[s.key];
  }
  try {
    return resolveAuthConfig(authInputFromSources({ flags: authFlags, env, file }));
  } catch (e) {
    if (e instanceof AuthConfigError) throw new ConfigError(e.message);
    throw e;
  }
}

/** `nats://a:4222,nats://b:4222` (or `a:4222,b:4222`) → the server list the nats client takes. */
function engineOf(v: string | undefined): string[] | null {
  if (v === undefined || v === '') return null;
  const urls = v.split(',').map((u) => u.trim()).filter((u) => u !== '');
  for (const u of urls) {
    if (!/^(nats|tls):\/\/[^/\s]+$/.test(u) && !/^[^/:\s]+:\d+$/.test(u)) throw new ConfigError(`engine: ${JSON.stringify(u)} is not a NATS server URL (nats://host:port)`);
  }
  if (urls.length === 0) throw new ConfigError('engine: give at least one nats://host:port');
  return urls;
}

function tlsOf(certFile: string | undefined, keyFile: string | undefined): HubConfig['tls'] {
  if (certFile === undefined && keyFile === undefined) return null;
  if (certFile === undefined || keyFile === undefined) throw new ConfigError('tlsCert and tlsKey go together: give both (--tls-cert FILE --tls-key FILE) or neither');
  for (const [name, file] of [['tlsCert', certFile], ['tlsKey', keyFile]] as const) {
    try {
      fs.accessSync(file, fs.constants.R_OK);
    } catch (e) {
      throw new ConfigError(`${name} ${file} cannot be read: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
  }
  return { certFile: path.resolve(certFile), keyFile: path.resolve(keyFile) };
}

const LOOPBACK = /^(127\.\d+\.\d+\.\d+|::1|localhost|\[::1\])$/;

/** Like Redis' protected mode: refuse a public bind without auth unless told `insecure`. */
export function assertSafeBind(cfg: HubConfig): void {
  if (cfg.authEnabled || cfg.insecure || LOOPBACK.test(cfg.host)) return;
  throw new ConfigError(
    `refusing to bind ${cfg.host} with authentication off: anyone who can reach it could read and write every topic. ` +
      'Configure authentication, bind 127.0.0.1, or pass --insecure (TRIBUTARY_INSECURE=1) to accept the risk.',
  );
}
