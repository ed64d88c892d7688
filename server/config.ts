/**
 * Resolves the hub's settings (the table in settings.ts) from their sources —
 * flag, then environment, then config file, then default — into a HubConfig,
 * and checks what no single row can (TLS files, auth as a whole, a public
 * bind without auth).
 */
import fs from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { resolveAuthConfig, type AuthConfig } from './auth/auth-config.ts';
import type { ClientLimits } from './limits/client-limits.ts';
import { ConfigError, SETTINGS, envOf, flagOf, parseSetting, specOf, type SettingKey, type SettingValues, type SettingsSection, type TopLevelSettings } from './settings.ts';

export type HubConfig = Omit<TopLevelSettings, 'tlsCert' | 'tlsKey' | 'allowedOrigins' | 'autoCreateTopics'> & {
  /** On while auth is off unless set. */
  autoCreateTopics: boolean;
  topic: SettingsSection<'topic'>;
  storage: SettingsSection<'storage'>;
  groups: SettingsSection<'groups'>;
  limits: ClientLimits;
  /** Certificate and key files when serving TLS (uWS SSLApp), else null. */
  tls: { certFile: string; keyFile: string } | null;
  /** Authentication and allowed origins, checked as a whole by resolveAuthConfig. */
  auth: AuthConfig;
  /** Whether tokens are checked (`auth.mode` is jwt). */
  authEnabled: boolean;
};

/** Flattens `{topic: {retentionMs: 1}}` into `{'topic.retentionMs': 1}`. */
function flatten(obj: Record<string, unknown>, prefix = '', out: Record<string, unknown> = {}): Record<string, unknown> {
  for (const [k, v] of Object.entries(obj)) {
    const key = prefix ? `${prefix}.${k}` : k;
    if (typeof v === 'object' && v !== null && !Array.isArray(v) && !specOf(key)) flatten(v as Record<string, unknown>, key, out);
    else out[key] = v;
  }
  return out;
}

function readConfigFile(file: string): Record<string, unknown> {
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
  /** Flag values by setting key (only flags the user gave). */
  flags?: Partial<Record<string, unknown>>;
  env?: NodeJS.ProcessEnv;
  /** Path of a YAML or JSON config file. */
  file?: string;
}

/** Every setting by key: the first source that has it, parsed; problems collected into one ConfigError. */
function resolveSettings(sources: ConfigSources): SettingValues {
  const env = sources.env ?? process.env;
  const fromFile = sources.file ? readConfigFile(sources.file) : {};
  const fileName = sources.file ? path.basename(sources.file) : '';
  const problems: string[] = [];
  for (const key of Object.keys(fromFile)) {
    if (!specOf(key)) problems.push(`config file ${fileName}: unknown setting ${JSON.stringify(key)}`);
  }
  const values: Record<string, unknown> = {};
  for (const key of Object.keys(SETTINGS) as SettingKey[]) {
    const flag = sources.flags?.[key];
    const envValue = env[envOf(key)];
    let v: unknown = SETTINGS[key].default;
    if (flag !== undefined) v = parseSetting(key, flag, `flag ${flagOf(key)}`, problems);
    else if (envValue !== undefined && envValue !== '') v = parseSetting(key, envValue, `env ${envOf(key)}`, problems);
    else if (fromFile[key] !== undefined && fromFile[key] !== null) v = parseSetting(key, fromFile[key], `config file ${fileName}`, problems);
    values[key] = Array.isArray(v) ? [...v] : v;
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return values as SettingValues;
}

/** Settings by section: `topic.retentionMs` becomes `topic: {retentionMs}`; top-level keys stay. */
function bySection(values: SettingValues): TopLevelSettings & Record<string, Record<string, unknown>> {
  const tree: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(values)) {
    const dot = key.indexOf('.');
    if (dot < 0) tree[key] = v;
    else ((tree[key.slice(0, dot)] ??= {}) as Record<string, unknown>)[key.slice(dot + 1)] = v;
  }
  return tree as TopLevelSettings & Record<string, Record<string, unknown>>;
}

/** Resolves every setting from its sources. Throws ConfigError naming the source of each bad value. */
export function loadConfig(sources: ConfigSources = {}): HubConfig {
  const { tlsCert, tlsKey, allowedOrigins, autoCreateTopics, auth: authInput, ...rest } = bySection(resolveSettings(sources));
  const auth = resolveAuthConfig({ ...(authInput as SettingsSection<'auth'>), allowedOrigins });
  const authEnabled = auth.mode === 'jwt';
  const cfg = {
    ...rest,
    data: path.resolve(rest.data),
    connectors: rest.connectors === undefined ? undefined : path.resolve(rest.connectors),
    autoCreateTopics: autoCreateTopics ?? !authEnabled,
    tls: tlsOf(tlsCert, tlsKey),
    auth,
    authEnabled,
  } as HubConfig;
  if (cfg.groups.heartbeatIntervalMs >= cfg.groups.sessionTimeoutMs) {
    // Members would be expired between two heartbeats.
    throw new ConfigError(`groups.heartbeatIntervalMs (${cfg.groups.heartbeatIntervalMs}) must be below groups.sessionTimeoutMs (${cfg.groups.sessionTimeoutMs})`);
  }
  if (cfg.engine !== undefined) engineServers(cfg.engine);
  if (cfg.engineMirror.length > 0 && cfg.engine === undefined) throw new ConfigError('engineMirror: serves mirrors of a JetStream engine; set engine too');
  if (cfg.sendHighWaterBytes >= cfg.maxBufferedBytesPerConnection) {
    throw new ConfigError(`sendHighWaterBytes (${cfg.sendHighWaterBytes}) must be below maxBufferedBytesPerConnection (${cfg.maxBufferedBytesPerConnection})`);
  }
  return cfg;
}

/** `nats://a:4222,nats://b:4222` (or `a:4222,b:4222`) → the server list the nats client takes; ConfigError when malformed. */
export function engineServers(v: string): string[] {
  const urls = v
    .split(',')
    .map((u) => u.trim())
    .filter((u) => u !== '');
  for (const u of urls) {
    if (!/^(nats|tls):\/\/[^/\s]+$/.test(u) && !/^[^/:\s]+:\d+$/.test(u)) throw new ConfigError(`engine: ${JSON.stringify(u)} is not a NATS server URL (nats://host:port)`);
  }
  if (urls.length === 0) throw new ConfigError('engine: give at least one nats://host:port');
  return urls;
}

function tlsOf(certFile: string | undefined, keyFile: string | undefined): HubConfig['tls'] {
  if (certFile === undefined && keyFile === undefined) return null;
  if (certFile === undefined || keyFile === undefined) throw new ConfigError('tlsCert and tlsKey go together: give both (--tls-cert FILE --tls-key FILE) or neither');
  for (const [name, file] of [
    ['tlsCert', certFile],
    ['tlsKey', keyFile],
  ] as const) {
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
