/**
 * Every hub setting in one table: its config-file key, flag, environment
 * variable, kind, default and doc, and the one parser that reads a value.
 *
 * A setting's key is its config-file key (`topic.retentionMs`, nested in
 * YAML/JSON as `topic: {retentionMs: ...}`); its flag (`--topic-retention-ms`)
 * and variable (`TRIBUTARY_TOPIC_RETENTION_MS`) derive from the key, or from
 * `name` when a row gives one. Precedence: flag, then environment, then file,
 * then default (server/config.ts resolves them; the README's configuration
 * table lists this table, checked by test/config/readme-config.test.ts).
 *
 * To add a setting, add a row: `loadConfig` returns it under its section
 * (`groups.sessionTimeoutMs` → `cfg.groups.sessionTimeoutMs`), the CLI gets its
 * flag, and the README test asks for its row.
 *
 * This module imports nothing of the server so every component, storage
 * included, can read its defaults from here.
 */
import fs from 'node:fs';
import { LIMITS } from '../protocol/limits.ts';

type SettingKind = 'int' | 'bool' | 'string' | 'enum' | 'list' | 'pem';

export interface SettingSpec {
  kind: SettingKind;
  default: number | boolean | string | readonly string[] | undefined;
  doc: string;
  min?: number;
  max?: number;
  /** The choices of an `enum`. */
  values?: readonly string[];
  /** Flag and variable stem when it differs from the key (`limits.maxConnections` → `--max-connections`). */
  name?: string;
  /** The default as the README says it, where the value alone would mislead (derived or unset defaults). */
  defaultDoc?: string;
  /** Hidden from --help and the README (test knobs). */
  hidden?: boolean;
}

const KiB = 1024;
const MiB = 1024 * KiB;
const DAY_MS = 24 * 3600_000;

export const SETTINGS = {
  host: { kind: 'string', default: '127.0.0.1', doc: 'address to bind; a non-loopback address with auth off needs `insecure`' },
  port: { kind: 'int', default: 8080, min: 0, max: 65535, doc: 'TCP port for HTTP and WebSocket; 0 picks a free one (the real one is printed)' },
  data: { kind: 'string', default: './data', doc: 'data directory (topics, segments, the lock file); unused with `engine`' },
  engine: {
    kind: 'string',
    default: undefined,
    doc: 'keep the log in NATS JetStream instead of `data`: nats://host:port[,nats://host:port…] (hubs over one cluster share every topic and keep no state of their own)',
  },
  engineMirror: {
    kind: 'list',
    default: [],
    defaultDoc: 'empty (a writable hub)',
    doc: "JetStream engine, second region: serve these topics (comma-separated, or *) read-only from mirrors kept in this hub's NATS cluster; produce and topic changes are refused",
  },
  insecure: { kind: 'bool', default: false, doc: 'allow binding a non-loopback address while authentication is off' },
  tlsCert: { kind: 'string', default: undefined, doc: 'PEM certificate (chain) file: serve https:// and wss:// (needs tlsKey)' },
  tlsKey: { kind: 'string', default: undefined, doc: 'PEM private key file of tlsCert' },
  allowFallbackTransport: { kind: 'bool', default: false, doc: "start even when uWebSockets.js's native binary cannot load and its slow pure-Node fallback is active" },
  logLevel: {
    kind: 'enum',
    default: 'info',
    values: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'],
    doc: 'pino log level; lines are human-readable on a terminal, JSON otherwise (`TRIBUTARY_LOG_FORMAT=json` or `pretty` forces one)',
  },

  autoCreateTopics: { kind: 'bool', default: undefined, defaultDoc: 'on without auth', doc: 'create a topic on its first produce or subscribe (default: on while auth is off, off with auth)' },
  defaultPartitions: { kind: 'int', default: 1, min: 1, max: LIMITS.maxPartitions, doc: 'partition count of auto-created topics and of POST /v1/topics without `partitions`' },
  maxFutureTimestampMs: { kind: 'int', default: 3_600_000, min: 0, doc: 'a record timestamp further than this in the future is refused (TIMESTAMP_IN_FUTURE)' },

  maxFrameBytes: {
    kind: 'int',
    default: LIMITS.maxFrameBytes,
    min: 1024,
    max: LIMITS.maxFrameBytes,
    doc: 'largest WebSocket frame accepted; larger ones close the connection with 4413 (more than 64 KiB larger: uWS drops it, the client sees 1006)',
  },
  maxHttpBodyBytes: { kind: 'int', default: 8 * MiB, min: 1024, max: 64 * MiB, doc: 'largest HTTP request body; larger ones get 413 BODY_TOO_LARGE' },

  sendHighWaterBytes: { kind: 'int', default: 1 * MiB, min: 16 * KiB, doc: "a connection whose send buffer holds more than this is paused: no records frames until uWS's drain" },
  maxBufferedBytesPerConnection: { kind: 'int', default: 16 * MiB, min: 64 * KiB, doc: 'hard cap of one connection’s send buffer; reaching it closes with 4429 SLOW_CONSUMER' },
  slowConsumerTimeoutMs: { kind: 'int', default: 30_000, min: 100, doc: 'a connection paused (above sendHighWaterBytes) for longer than this is closed with 4429 SLOW_CONSUMER' },
  subscriptionReadBytes: { kind: 'int', default: 256 * KiB, min: 1024, max: LIMITS.maxBatchBytes, doc: 'bytes of batches read per records frame (at least one whole batch)' },

  httpReadDefaultRecords: { kind: 'int', default: 100, min: 1, doc: 'GET …/records without `limit` returns at most this many records' },
  httpReadMaxRecords: { kind: 'int', default: 1000, min: 1, doc: 'cap on `limit` of GET …/records' },
  httpReadMaxBytes: { kind: 'int', default: 4 * MiB, min: 1024, doc: 'cap on `maxBytes` of GET …/records (batch bytes read)' },

  connectors: { kind: 'string', default: undefined, doc: 'YAML or JSON connectors file to run inside the hub (as `tributary connect FILE` would); status at GET /v1/connectors' },

  shutdownTimeoutMs: { kind: 'int', default: 10_000, min: 0, doc: 'on SIGTERM/SIGINT, wait at most this long for in-flight appends before closing storage' },

  'topic.retentionMs': { kind: 'int', default: 7 * DAY_MS, min: -1, doc: 'default topic retention by age (-1 keeps forever)' },
  'topic.retentionBytes': { kind: 'int', default: -1, min: -1, doc: 'default retention by size per partition (-1 = no limit)' },
  'topic.cleanupPolicy': { kind: 'enum', default: 'delete', values: ['delete', 'compact'], doc: 'default cleanup policy' },
  'topic.deleteRetentionMs': { kind: 'int', default: DAY_MS, min: 0, doc: 'default time a tombstone survives compaction' },
  'topic.fsync': { kind: 'enum', default: 'always', values: ['always', 'interval', 'never'], doc: 'default durability: `always` acks after group-committed fdatasync' },
  'topic.fsyncIntervalMs': { kind: 'int', default: 1000, min: 1, doc: 'fsync period for `interval` topics' },
  'topic.segmentBytes': { kind: 'int', default: 64 * MiB, min: 1024, doc: 'default segment size before rolling' },
  'topic.segmentMs': { kind: 'int', default: 7 * DAY_MS, min: -1, doc: 'default segment age before rolling (-1 = never by age)' },
  'topic.replicas': { kind: 'int', default: 0, min: 0, max: 5, doc: 'JetStream engine: copies of each partition (0 = 3 on a cluster of three or more nodes, else 1)' },

  'storage.maxOpenFiles': { kind: 'int', default: 256, min: 8, doc: 'max open segment files across partitions (least recently used closed first)' },
  'storage.tailCacheBytes': { kind: 'int', default: 4 * MiB, min: 0, doc: 'bytes of newest batches kept in memory per partition for live tailing (filled while the partition is read)' },
  'storage.maxProducersPerPartition': { kind: 'int', default: 10_000, min: 1, doc: 'producer ids tracked per partition for idempotence (older ones are looked up in the log)' },
  'storage.cleanupIntervalMs': { kind: 'int', default: 5 * 60_000, min: 100, doc: 'how often retention and compaction run' },
  'storage.indexIntervalBytes': { kind: 'int', default: 4096, min: 64, doc: 'bytes of log between sparse offset-index entries' },
  'storage.snapshotIntervalBytes': { kind: 'int', default: 8 * MiB, min: 1024, doc: 'bytes appended between producer-state snapshots (bounds the log replayed at recovery)' },
  'storage.maxIndexCacheBytes': { kind: 'int', default: 64 * MiB, min: 64 * KiB, doc: 'memory for closed segments’ indexes across the store' },
  'storage.maxCompactionKeys': { kind: 'int', default: 1_000_000, min: 1, doc: 'keys one compaction pass may hold in memory; a log with more is compacted over several passes' },

  'groups.sessionTimeoutMs': {
    kind: 'int',
    default: 10_000,
    min: 100,
    doc: 'a group member silent this long (no heartbeat or other frame; a dropped connection counts as silence) is removed and its partitions move on',
  },
  'groups.heartbeatIntervalMs': { kind: 'int', default: 3_000, min: 10, doc: 'how often group members heartbeat (told to each member when it joins); keep it well below groups.sessionTimeoutMs' },
  'groups.rebalanceTimeoutMs': { kind: 'int', default: 30_000, min: 100, doc: 'a member that does not confirm giving up revoked partitions within this is expelled' },
  'groups.maxMembers': { kind: 'int', default: 1000, min: 1, doc: 'members per consumer group; more joins are refused with CONFLICT' },
  'groups.maxGroups': { kind: 'int', default: 10_000, min: 1, doc: 'consumer groups (with members or committed offsets) per hub; more are refused with CONFLICT' },

  'auth.mode': {
    kind: 'enum',
    default: undefined,
    values: ['none', 'jwt'],
    name: 'auth',
    defaultDoc: 'jwt when a key source is set, else none',
    doc: '`jwt` or `none` (development only: logged loudly)',
  },
  'auth.secret': { kind: 'string', default: undefined, doc: 'HMAC secret (HS256/384/512), at least 32 bytes' },
  'auth.publicKey': { kind: 'pem', default: undefined, defaultDoc: '— (PEM text, `\\n` escapes accepted, or a file path)', doc: 'PEM public key (SPKI), or the path of a file holding one' },
  'auth.jwksUrl': { kind: 'string', default: undefined, doc: 'https URL of a JSON Web Key Set' },
  'auth.jwksCacheMs': { kind: 'int', default: 10 * 60_000, min: 0, doc: 'how long fetched JWKS keys are used before a refetch' },
  'auth.jwksCooldownMs': { kind: 'int', default: 30_000, min: 0, doc: 'minimum time between refetches caused by an unknown kid' },
  'auth.jwksTimeoutMs': { kind: 'int', default: 5_000, min: 1, doc: 'timeout of one JWKS request' },
  'auth.issuer': { kind: 'string', default: undefined, defaultDoc: '— (not checked)', doc: 'required "iss"' },
  'auth.audience': { kind: 'string', default: undefined, defaultDoc: '— (not checked; warned)', doc: 'required "aud"' },
  'auth.algorithms': { kind: 'list', default: undefined, defaultDoc: 'from the key source', doc: 'accepted algorithms, comma-separated; derived from the key source when unset' },
  'auth.clockToleranceSec': { kind: 'int', default: 30, min: 0, defaultDoc: '30 (max 300)', doc: 'allowed clock skew for exp and nbf' },
  'auth.allowTokensWithoutExp': { kind: 'bool', default: false, doc: 'accept tokens without "exp" (refused by default; logged loudly at start-up)' },
  'auth.maxTokenLifetimeSec': {
    kind: 'int',
    default: 24 * 3600,
    min: 1,
    doc: 'no token is honoured longer than this after its "iat" (after the hub first sees it, without "iat"), whatever its "exp"',
  },
  'auth.authTimeoutMs': { kind: 'int', default: 10_000, min: 1, name: 'authTimeoutMs', doc: 'a WebSocket must authenticate within this time' },
  allowedOrigins: {
    kind: 'list',
    default: [],
    defaultDoc: 'empty (all with auth off; with auth on, same-origin pages only)',
    doc: 'browser origins allowed (WebSocket upgrades and CORS), comma-separated, or *',
  },

  'limits.maxConnections': { kind: 'int', default: 10_000, min: 1, name: 'maxConnections', doc: 'open WebSocket connections on the hub (more are closed with 4429 TOO_MANY_CONNECTIONS)' },
  'limits.maxConnectionsPerSubject': { kind: 'int', default: 100, min: 1, name: 'maxConnectionsPerSubject', doc: 'open connections per token subject' },
  'limits.connectionsPerSecPerAddress': {
    kind: 'int',
    default: 100,
    min: 1,
    name: 'connectionsPerSecPerAddress',
    doc: 'new WebSocket connections per second per remote address (more: upgrade refused with 429 `RATE_LIMITED` and `Retry-After`)',
  },
  'limits.connectionsBurstPerAddress': { kind: 'int', default: 200, min: 1, name: 'connectionsBurstPerAddress', doc: 'burst of new connections per remote address' },
  'limits.produceBytesPerSec': { kind: 'int', default: 8 * MiB, min: 1, name: 'produceBytesPerSec', doc: 'produce rate per connection, bytes' },
  'limits.produceBytesBurst': { kind: 'int', default: 16 * MiB, min: 1, name: 'produceBytesBurst', doc: 'produce burst per connection, bytes' },
  'limits.produceEventsPerSec': { kind: 'int', default: 10_000, min: 1, name: 'produceEventsPerSec', doc: 'produce rate per connection, records' },
  'limits.produceEventsBurst': { kind: 'int', default: 20_000, min: 1, name: 'produceEventsBurst', doc: 'produce burst per connection, records' },
  'limits.maxSubscriptionsPerConnection': { kind: 'int', default: 100, min: 1, name: 'maxSubscriptionsPerConnection', doc: 'subscriptions open on one connection' },
  'limits.maxInFlightPerConnection': { kind: 'int', default: 64, min: 1, name: 'maxInFlightPerConnection', doc: 'requests awaiting a reply on one connection' },
  'limits.idleTimeoutMs': { kind: 'int', default: 120_000, min: 1, name: 'idleTimeoutMs', doc: 'close a WebSocket silent for this long (4408 IDLE_TIMEOUT; the hub pings first)' },
  // Sized for a gateway, not a device: one edge worker sends many devices' readings with one token.
  'limits.httpProduceBytesPerSec': { kind: 'int', default: 64 * MiB, min: 1, name: 'httpProduceBytesPerSec', doc: 'HTTP produce rate per token subject, bytes' },
  'limits.httpProduceBytesBurst': { kind: 'int', default: 128 * MiB, min: 1, name: 'httpProduceBytesBurst', doc: 'HTTP produce burst per token subject, bytes' },
  'limits.httpProduceEventsPerSec': { kind: 'int', default: 100_000, min: 1, name: 'httpProduceEventsPerSec', doc: 'HTTP produce rate per token subject, records' },
  'limits.httpProduceEventsBurst': { kind: 'int', default: 200_000, min: 1, name: 'httpProduceEventsBurst', doc: 'HTTP produce burst per token subject, records' },

  testRecoveryDelayMs: { kind: 'int', default: 0, min: 0, hidden: true, doc: 'test knob: wait this long before storage recovery so /healthz 503 can be observed' },
} as const satisfies Record<string, SettingSpec>;

export type SettingKey = keyof typeof SETTINGS;
type Spec<K extends SettingKey> = (typeof SETTINGS)[K];

/** The type a setting's value has once parsed; `undefined` only where the default is. */
export type SettingValue<K extends SettingKey> =
  | (Spec<K> extends { kind: 'int' }
      ? number
      : Spec<K> extends { kind: 'bool' }
        ? boolean
        : Spec<K> extends { kind: 'list' }
          ? string[]
          : Spec<K> extends { kind: 'enum'; values: readonly (infer V)[] }
            ? V
            : string)
  | (Spec<K>['default'] extends undefined ? undefined : never);

/** The settings of one section (`topic`, `storage`, `limits`, …) by their name inside it. */
export type SettingsSection<P extends string> = {
  [K in SettingKey as K extends `${P}.${infer Name}` ? Name : never]: SettingValue<K>;
};

/** The settings outside any section (`host`, `port`, …). */
export type TopLevelSettings = {
  [K in SettingKey as K extends `${string}.${string}` ? never : K]: SettingValue<K>;
};

/** Every setting by key, parsed. */
export type SettingValues = { [K in SettingKey]: SettingValue<K> };

export function specOf(key: string): SettingSpec | undefined {
  return Object.hasOwn(SETTINGS, key) ? (SETTINGS as Record<string, SettingSpec>)[key] : undefined;
}

function stem(key: string): string {
  return specOf(key)?.name ?? key;
}

/** `topic.retentionMs` → `--topic-retention-ms`. */
export function flagOf(key: string): string {
  return (
    '--' +
    stem(key)
      .replace(/\./g, '-')
      .replace(/([a-z0-9])([A-Z])/g, '$1-$2')
      .toLowerCase()
  );
}

/** `topic.retentionMs` → `TRIBUTARY_TOPIC_RETENTION_MS`. */
export function envOf(key: string): string {
  return (
    'TRIBUTARY_' +
    stem(key)
      .replace(/\./g, '_')
      .replace(/([a-z0-9])([A-Z])/g, '$1_$2')
      .toUpperCase()
  );
}

/** The default of a setting (what an engine uses when it is built without one). */
export function defaultOf<K extends SettingKey>(key: K): SettingValue<K> {
  const d = SETTINGS[key].default as unknown;
  return (Array.isArray(d) ? [...d] : d) as SettingValue<K>;
}

/** The defaults of one section, by name inside it. */
export function sectionDefaults<P extends string>(prefix: P): SettingsSection<P> {
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(SETTINGS)) {
    if (key.startsWith(`${prefix}.`)) out[key.slice(prefix.length + 1)] = defaultOf(key as SettingKey);
  }
  return out as SettingsSection<P>;
}

/** Bad settings, every problem listed so the operator can fix them all at once; each names where its value came from. */
export class ConfigError extends Error {
  readonly problems: readonly string[];
  constructor(problems: string | readonly string[]) {
    const list = typeof problems === 'string' ? [problems] : [...problems];
    super(list.length === 1 ? list[0] : `invalid settings:\n  - ${list.join('\n  - ')}`);
    this.name = 'ConfigError';
    this.problems = list;
  }
}

/**
 * Parses one raw value (a flag's or variable's string, or what YAML gave)
 * by its row. `source` names where it came from (`env TRIBUTARY_PORT`);
 * a value that does not fit adds a problem and returns undefined.
 */
export function parseSetting(key: string, raw: unknown, source: string, problems: string[]): unknown {
  const spec = specOf(key);
  const where = `${source}: ${key}`;
  const bad = (want: string): undefined => {
    problems.push(`${where} must be ${want}, got ${JSON.stringify(raw)}`);
    return undefined;
  };
  if (!spec) return bad('a known setting');
  switch (spec.kind) {
    case 'int': {
      const n = typeof raw === 'number' ? raw : typeof raw === 'string' && /^-?\d+$/.test(raw.trim()) ? Number(raw.trim()) : NaN;
      if (!Number.isSafeInteger(n)) return bad('an integer');
      if (spec.min !== undefined && n < spec.min) return bad(`>= ${spec.min}`);
      if (spec.max !== undefined && n > spec.max) return bad(`<= ${spec.max}`);
      return n;
    }
    case 'bool': {
      if (typeof raw === 'boolean') return raw;
      const s = typeof raw === 'string' ? raw.trim().toLowerCase() : '';
      if (['1', 'true', 'yes', 'on'].includes(s)) return true;
      if (['0', 'false', 'no', 'off'].includes(s)) return false;
      return bad('true or false');
    }
    case 'enum':
      if (typeof raw === 'string' && spec.values!.includes(raw.trim())) return raw.trim();
      return bad(`one of ${spec.values!.join(', ')}`);
    case 'string':
      if (typeof raw === 'number') return String(raw);
      if (typeof raw === 'string' && raw.trim().length > 0) return raw.trim();
      return bad('a non-empty string');
    case 'list':
      if (Array.isArray(raw) && raw.every((v) => typeof v === 'string')) return raw.map((v: string) => v.trim()).filter(Boolean);
      if (typeof raw === 'string')
        return raw
          .split(',')
          .map((v) => v.trim())
          .filter(Boolean);
      return bad('a comma-separated string or a list of strings');
    case 'pem':
      if (typeof raw !== 'string') return bad('PEM text or a file path');
      // Environment variables rarely hold real newlines; accept `\n` escapes.
      if (raw.includes('-----BEGIN')) return raw.replace(/\\n/g, '\n');
      try {
        return fs.readFileSync(raw.trim(), 'utf8');
      } catch (err) {
        problems.push(`${where} is neither PEM text nor a readable file (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
        return undefined;
      }
  }
}
