/**
 * A connectors file (YAML or JSON; YAML is a superset of JSON, one parser):
 *
 *   hub: { url: ws://127.0.0.1:8080/v1/ws, token: … }   # omitted inside the hub
 *   connectors:
 *     - { name: orders-db, type: postgres-sink, topic: orders, … }
 *
 * Each connector's own keys are checked by its factory (connector-types.ts);
 * this file checks the frame around them and names the bad key and connector.
 */
import fs from 'node:fs';
import YAML from 'yaml';
import { TributaryError } from '../protocol/errors.ts';
import { DEFAULT_BACKOFF } from './backoff.ts';

export interface ConnectorConfig {
  name: string;
  type: string;
  topic: string;
  /** The connector's own settings (validated by its factory). */
  settings: Record<string, unknown>;
  /** Retry delays after a failure of the other side. */
  backoff: { baseMs: number; capMs: number };
}

export interface ConnectFile {
  hub: { url?: string; token?: string };
  connectors: ConnectorConfig[];
}

export function configError(message: string): TributaryError {
  return new TributaryError('BAD_CONFIG', message);
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;

export function parseConnectFile(text: string, where = 'connectors file'): ConnectFile {
  let doc: unknown;
  try {
    doc = YAML.parse(text);
  } catch (e) {
    throw configError(`${where} is not valid YAML/JSON: ${(e as Error).message}`);
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw configError(`${where} must hold a map with \`connectors\``);
  const d = doc as Record<string, unknown>;
  const hub = (d.hub ?? {}) as Record<string, unknown>;
  if (typeof hub !== 'object' || Array.isArray(hub)) throw configError(`${where}: hub must be a map { url, token }`);
  if (hub.url !== undefined && typeof hub.url !== 'string') throw configError(`${where}: hub.url must be a ws:// or wss:// URL`);
  if (hub.token !== undefined && typeof hub.token !== 'string') throw configError(`${where}: hub.token must be a string`);
  if (!Array.isArray(d.connectors) || d.connectors.length === 0) throw configError(`${where}: connectors must be a non-empty list`);
  const seen = new Set<string>();
  const connectors = d.connectors.map((c: unknown, i: number): ConnectorConfig => {
    if (typeof c !== 'object' || c === null || Array.isArray(c)) throw configError(`${where}: connectors[${i}] must be a map`);
    const { name, type, topic, backoff, ...settings } = c as Record<string, unknown>;
    if (typeof name !== 'string' || !NAME.test(name)) throw configError(`${where}: connectors[${i}].name must be 1-100 of A-Z a-z 0-9 . _ -`);
    if (seen.has(name)) throw configError(`${where}: two connectors are named ${name}`);
    seen.add(name);
    if (typeof type !== 'string') throw configError(`${where}: connector ${name}: type is required`);
    if (typeof topic !== 'string' || topic.length === 0) throw configError(`${where}: connector ${name}: topic is required`);
    const b = (backoff ?? {}) as Record<string, unknown>;
    const baseMs = b.baseMs ?? DEFAULT_BACKOFF.baseMs;
    const capMs = b.capMs ?? DEFAULT_BACKOFF.capMs;
    if (!Number.isSafeInteger(baseMs) || (baseMs as number) < 1 || !Number.isSafeInteger(capMs) || (capMs as number) < (baseMs as number)) {
      throw configError(`${where}: connector ${name}: backoff needs integer baseMs >= 1 and capMs >= baseMs`);
    }
    return { name, type, topic, settings, backoff: { baseMs: baseMs as number, capMs: capMs as number } };
  });
  return { hub: { url: hub.url as string | undefined, token: hub.token as string | undefined }, connectors };
}

export function readConnectFile(file: string): ConnectFile {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw configError(`cannot read connectors file ${file}: ${(e as Error).message}`);
  }
  return parseConnectFile(text, file);
}

/** Typed readers of a connector's settings: each names the connector and key when wrong. */
export class Settings {
  private readonly used = new Set<string>();
  constructor(
    readonly connector: string,
    private readonly s: Record<string, unknown>,
  ) {}

  private fail(key: string, want: string): never {
    throw configError(`connector ${this.connector}: ${key} must be ${want}, got ${JSON.stringify(this.s[key])}`);
  }

  string(key: string, def?: string): string {
    this.used.add(key);
    const v = this.s[key] ?? def;
    if (typeof v !== 'string' || v.length === 0) this.fail(key, 'a non-empty string');
    return v;
  }

  optionalString(key: string): string | undefined {
    this.used.add(key);
    const v = this.s[key];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'string' || v.length === 0) this.fail(key, 'a non-empty string');
    return v;
  }

  int(key: string, def: number, min = 0, max = Number.MAX_SAFE_INTEGER): number {
    this.used.add(key);
    const v = this.s[key] ?? def;
    if (!Number.isSafeInteger(v) || (v as number) < min || (v as number) > max) this.fail(key, `an integer in [${min}, ${max}]`);
    return v as number;
  }

  oneOf<T extends string>(key: string, values: readonly T[], def: T): T {
    this.used.add(key);
    const v = this.s[key] ?? def;
    if (!values.includes(v as T)) this.fail(key, `one of ${values.join(', ')}`);
    return v as T;
  }

  stringList(key: string, def?: string[]): string[] {
    this.used.add(key);
    let v = this.s[key] ?? def;
    if (typeof v === 'string') v = [v];
    if (!Array.isArray(v) || v.length === 0 || v.some((x) => typeof x !== 'string' || x.length === 0)) this.fail(key, 'a string or a non-empty list of strings');
    return v as string[];
  }

  has(key: string): boolean {
    this.used.add(key);
    return this.s[key] !== undefined && this.s[key] !== null;
  }

  map(key: string): Record<string, unknown> | undefined {
    this.used.add(key);
    const v = this.s[key];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'object' || Array.isArray(v)) this.fail(key, 'a map');
    return v as Record<string, unknown>;
  }

  /** Refuses keys no reader asked for: a typo must not silently fall back to a default. */
  done(): void {
    for (const k of Object.keys(this.s)) if (!this.used.has(k)) throw configError(`connector ${this.connector}: unknown setting ${JSON.stringify(k)}`);
  }
}
