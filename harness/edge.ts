/**
 * Runs the edge worker in workerd (Miniflare) for tests and the bench: bundles
 * edge/worker.ts with esbuild the way wrangler does (workerd/worker/browser
 * export conditions, ESM), and mints device tokens with jose.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { SignJWT } from 'jose';
import { Miniflare } from 'miniflare';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const WORKER_ENTRY = path.join(ROOT, 'edge/worker.ts');
export const DEVICE_SECRET = 'test-device-secret-of-at-least-32-bytes!';
const COMPATIBILITY_DATE = '2026-04-01';

/** Bundles the worker into a fresh temp dir; returns the bundle's path. */
export async function buildWorker(): Promise<string> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tributary-edge-'));
  const outfile = path.join(dir, 'worker.js');
  await build({
    entryPoints: [WORKER_ENTRY],
    outfile,
    bundle: true,
    format: 'esm',
    platform: 'browser',
    conditions: ['workerd', 'worker', 'browser'],
    target: 'es2022',
    logLevel: 'silent',
  });
  return outfile;
}

export interface Edge {
  /** The worker's base URL (workerd's own HTTP listener on loopback). */
  url: string;
  mf: Miniflare;
  dispose(): Promise<void>;
}

/** Starts the bundled worker in workerd with the given vars/secrets. */
export async function startEdge(bundlePath: string, bindings: Record<string, string>): Promise<Edge> {
  const mf = new Miniflare({
    modules: true,
    scriptPath: bundlePath,
    modulesRoot: path.dirname(bundlePath),
    compatibilityDate: COMPATIBILITY_DATE,
    bindings,
  });
  const url = (await mf.ready).href.replace(/\/$/, '');
  return {
    url,
    mf,
    dispose: async () => {
      await mf.dispose();
    },
  };
}

export function removeBundle(bundlePath: string): void {
  fs.rmSync(path.dirname(bundlePath), { recursive: true, force: true });
}

export interface TokenOptions {
  sub: string;
  topics?: unknown;
  kind?: unknown;
  /** Seconds from now; negative for an expired token. Default 1 h. */
  expiresInS?: number;
  secret?: string;
  extra?: Record<string, unknown>;
}

export async function deviceToken(o: TokenOptions): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const claims: Record<string, unknown> = { kind: 'device', topics: ['sensors.*'], ...o.extra };
  if ('kind' in o) claims.kind = o.kind;
  if ('topics' in o) claims.topics = o.topics;
  return new SignJWT(claims)
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject(o.sub)
    .setIssuedAt(now)
    .setExpirationTime(now + (o.expiresInS ?? 3600))
    .sign(new TextEncoder().encode(o.secret ?? DEVICE_SECRET));
}

export interface ReadRecord {
  offset: number;
  timestamp: number;
  key: unknown;
  value: unknown;
  headers: Array<[string, unknown]>;
}

/**
 * Reads a partition from offset 0 to its end through the hub's HTTP API;
 * undefined when the hub has no such partition (or no such topic).
 */
export async function readPartition(hubUrl: string, topic: string, partition: number): Promise<ReadRecord[] | undefined> {
  const out: ReadRecord[] = [];
  let offset = 0;
  for (;;) {
    const res = await fetch(`${hubUrl}/v1/topics/${topic}/partitions/${partition}/records?offset=${offset}&limit=1000`);
    if (offset === 0 && (res.status === 404 || res.status === 400)) {
      await res.body?.cancel();
      return undefined;
    }
    if (!res.ok) throw new Error(`read ${topic}/${partition}@${offset}: HTTP ${res.status} ${await res.text()}`);
    const body = (await res.json()) as { records: ReadRecord[]; nextOffset: number };
    out.push(...body.records);
    if (body.records.length === 0 || body.nextOffset <= offset) return out;
    offset = body.nextOffset;
  }
}

/** Every record of a topic, partition by partition (an unknown topic has none). */
export async function readTopic(hubUrl: string, topic: string): Promise<Map<number, ReadRecord[]>> {
  const out = new Map<number, ReadRecord[]>();
  for (let p = 0; p < 1024; p++) {
    const records = await readPartition(hubUrl, topic, p);
    if (records === undefined) break;
    out.set(p, records);
  }
  return out;
}

export async function countRecords(hubUrl: string, topic: string): Promise<number> {
  let n = 0;
  for (const records of (await readTopic(hubUrl, topic)).values()) n += records.length;
  return n;
}

export function headerOf(r: ReadRecord, name: string): unknown {
  return r.headers.find(([n]) => n === name)?.[1];
}

export interface IngestOptions {
  token?: string;
  sequence?: number | string;
  contentType?: string;
  headers?: Record<string, string>;
}

/** POSTs a body (a JS value is sent as JSON; bytes or text as they are) to the worker's /ingest/:topic. */
export async function ingest(edgeUrl: string, topic: string, body: unknown, o: IngestOptions = {}): Promise<{ status: number; body: any; headers: Headers }> {
  const headers: Record<string, string> = { 'content-type': o.contentType ?? 'application/json', ...o.headers };
  if (o.token !== undefined) headers.authorization = `Bearer ${o.token}`;
  if (o.sequence !== undefined) headers['x-sequence'] = String(o.sequence);
  const payload = body instanceof Uint8Array || typeof body === 'string' ? body : JSON.stringify(body);
  const res = await fetch(`${edgeUrl}/ingest/${topic}`, { method: 'POST', headers, body: payload as BodyInit });
  const text = await res.text();
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = text;
  }
  return { status: res.status, body: parsed, headers: res.headers };
}
