/**
 * Shared by the tests that run a hub with auth on (security, limits,
 * browser, web-client, hardening): tokens signed with jose the way an
 * identity provider would, a hub started with auth on, and small HTTP
 * helpers.
 */
import { SignJWT } from 'jose';
import { startHub, type Hub, type HubOptions } from '../../harness/hub.ts';
import { WsClient } from './ws-client.ts';

export const SECRET = 'tributary-security-tests-secret-0123456789';
export const AUDIENCE = 'tributary';
export const APP_ORIGIN = 'https://app.example.com';

export interface TokenOptions {
  sub?: string;
  /** The `tributary` claim; null leaves it out. */
  tributary?: Record<string, unknown> | null;
  /** Seconds from now (negative: already expired); one hour when omitted. */
  expInSec?: number;
  /** Leave `exp` out (refused unless the hub allows tokens without it). */
  noExp?: boolean;
  /** `iat` in seconds since the epoch; now when omitted, left out when null. */
  iat?: number | null;
  audience?: string;
  secret?: string;
}

export async function token(opts: TokenOptions = {}): Promise<string> {
  const claims = opts.tributary === null ? {} : { tributary: opts.tributary ?? { produce: ['*'], consume: ['*'], groups: ['*'] } };
  const jwt = new SignJWT(claims)
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject(opts.sub ?? 'alice')
    .setAudience(opts.audience ?? AUDIENCE);
  if (opts.iat !== null) jwt.setIssuedAt(opts.iat);
  if (!opts.noExp) jwt.setExpirationTime(Math.floor(Date.now() / 1000) + (opts.expInSec ?? 3600));
  return jwt.sign(new TextEncoder().encode(opts.secret ?? SECRET));
}

/** An admin that may also produce and consume everything. */
export const adminToken = (sub = 'ops'): Promise<string> => token({ sub, tributary: { produce: ['*'], consume: ['*'], groups: ['*'], admin: true } });

/** An unsigned token (`alg: none`), the classic forgery. */
export function unsignedToken(sub = 'mallory'): string {
  const b64 = (o: unknown): string => Buffer.from(JSON.stringify(o)).toString('base64url');
  return `${b64({ alg: 'none', typ: 'JWT' })}.${b64({ sub, aud: AUDIENCE, tributary: { produce: ['*'], consume: ['*'], admin: true } })}.`;
}

/** A hub with HMAC auth on (clock tolerance 0, so that short expiries are exact). */
export function startAuthHub(extraArgs: string[] = [], opts: HubOptions = {}): Promise<Hub> {
  return startHub({
    ...opts,
    args: ['--auth-clock-tolerance-sec', '0', ...extraArgs, ...(opts.args ?? [])],
    env: { TRIBUTARY_AUTH_SECRET: SECRET, TRIBUTARY_AUTH_AUDIENCE: AUDIENCE, TRIBUTARY_ALLOWED_ORIGINS: APP_ORIGIN, ...opts.env },
  });
}

export async function createTopic(hub: Hub, name: string, partitions = 1): Promise<void> {
  const res = await fetch(`${hub.url}/v1/topics`, {
    method: 'POST',
    headers: { authorization: `Bearer ${await adminToken()}`, 'content-type': 'application/json' },
    body: JSON.stringify({ name, partitions }),
  });
  if (res.status !== 201) throw new Error(`creating ${name}: ${res.status} ${await res.text()}`);
}

/** Records in partition 0 of `topic`, read over HTTP as an admin. */
export async function recordCount(hub: Hub, topic: string): Promise<number> {
  const res = await fetch(`${hub.url}/v1/topics/${topic}/partitions/0/records?offset=0&limit=1000`, { headers: { authorization: `Bearer ${await adminToken()}` } });
  const body = (await res.json()) as { records: unknown[] };
  return body.records.length;
}

/** Opens a connection and says hello with `jwt`; resolves with the authenticated client. */
export async function authedClient(hub: Hub, jwt: string): Promise<WsClient> {
  const c = await WsClient.connect(hub.wsUrl);
  await c.hello(jwt);
  return c;
}

/** Fetch the metrics text and read one refusal counter. */
export async function refusals(hub: Hub, reason: string): Promise<number> {
  const text = await (await fetch(`${hub.url}/metrics`)).text();
  const m = new RegExp(`tributary_refusals_total\\{reason="${reason}"\\} (\\d+)`).exec(text);
  return m ? Number(m[1]) : 0;
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
