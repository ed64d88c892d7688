/**
 * Hostile input against a real hub: every frame type mutated at random
 * (fast-check), oversized and deeply nested CBOR, huge declared lengths,
 * invalid UTF-8 where text is expected, unknown frame types, floods of tiny
 * frames, and random requests on every HTTP route. The hub must answer with
 * errors or close the one connection, never crash, never change a log it
 * already holds, and keep its memory bounded.
 *
 * TRIBUTARY_SOAK=1 runs ten times the cases.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeCbor } from '../../protocol/index.ts';
import { startHub, type Hub } from '../../harness/hub.ts';
import { rssBytes, waitFor } from '../../harness/wait.ts';
import { bytes, WsClient } from '../helpers/ws-client.ts';

const SOAK = process.env.TRIBUTARY_SOAK === '1';
const RUNS = SOAK ? 5_000 : 500;
const MiB = 1024 * 1024;

let hub: Hub;
let canary: string;

async function readAll(topic: string): Promise<string> {
  const res = await fetch(`${hub.url}/v1/topics/${topic}/partitions/0/records?offset=0&limit=1000`);
  expect(res.status).toBe(200);
  return JSON.stringify((await res.json()).records);
}

async function healthy(): Promise<void> {
  const res = await fetch(`${hub.url}/healthz`);
  expect(res.status).toBe(200);
  expect(hub.proc.exitCode).toBeNull();
}

beforeAll(async () => {
  hub = await startHub();
  const made = await fetch(`${hub.url}/v1/topics`, { method: 'POST', body: JSON.stringify({ name: 'canary', partitions: 1 }) });
  expect(made.status).toBe(201);
  const records = Array.from({ length: 200 }, (_, n) => ({ key: `k${n % 5}`, value: { n, s: 'é✓' } }));
  const res = await fetch(`${hub.url}/v1/topics/canary/records`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ records }) });
  expect(res.status).toBe(200);
  canary = await readAll('canary');
});

afterAll(async () => {
  await hub?.stop();
  hub?.cleanup();
});

/** A well-formed frame of each type the hub reads, to be mutated. */
const TEMPLATES: Array<Record<string, unknown>> = [
  { t: 'hello', id: 1, v: 1, client: 'fuzz' },
  { t: 'auth', id: 1, token: 'x.y.z' },
  { t: 'produce', id: 1, topic: 'fuzz', pid: 'p', seq: 0, records: [{ k: 'a', v: bytes('v'), e: 0, h: [['h', 'v']], ts: 1, p: 0 }] },
  { t: 'produce', id: 1, topic: 'fuzz', batches: [{ p: 0, b: new Uint8Array(70) }] },
  { t: 'subscribe', id: 1, topic: 'fuzz', from: 'earliest', credit: 65536, partitions: [0], positions: { 0: 0 } },
  { t: 'credit', sub: 1, bytes: 1024 },
  { t: 'unsubscribe', id: 1, sub: 1 },
  { t: 'commit', id: 1, group: 'g', topic: 'fuzz', offsets: [[0, 1]] },
  { t: 'metadata', id: 1, topic: 'fuzz' },
  { t: 'ping', id: 1 },
  { t: 'heartbeat', id: 1, sub: 1 },
  { t: 'confirm', id: 1, sub: 1, generation: 1 },
];

const anyValue = fc.oneof(
  fc.anything({ maxDepth: 3 }),
  fc.uint8Array({ maxLength: 64 }),
  fc.integer(),
  fc.double(),
  fc.constantFrom(-1, 2 ** 53, Number.MAX_SAFE_INTEGER + 2, NaN, Infinity, '', 'fuzz', '../../etc', 'a'.repeat(300), null),
);

/** A template with some fields replaced, dropped or added. */
const mutatedFrame = fc
  .record({
    template: fc.constantFrom(...TEMPLATES),
    edits: fc.array(
      fc.tuple(fc.oneof(fc.constantFrom('t', 'id', 'topic', 'records', 'batches', 'from', 'seq', 'pid', 'sub', 'offsets', 'group', 'token', 'v'), fc.string({ maxLength: 8 })), fc.option(anyValue)),
      { maxLength: 4 },
    ),
  })
  .map(({ template, edits }) => {
    const f: Record<string, unknown> = { ...template };
    for (const [k, v] of edits) {
      if (v === null) delete f[k];
      else f[k] = v;
    }
    return f;
  });

/** Raw bytes: a valid frame's encoding with bytes flipped, cut or appended. */
const mutatedBytes = fc
  .record({ frame: mutatedFrame, flips: fc.array(fc.tuple(fc.nat(), fc.integer({ min: 1, max: 255 })), { maxLength: 4 }), cut: fc.option(fc.nat()), tail: fc.uint8Array({ maxLength: 16 }) })
  .map(({ frame, flips, cut, tail }) => {
    let b: Uint8Array;
    try {
      b = encodeCbor(frame);
    } catch {
      b = new Uint8Array([0xa0]);
    }
    b = new Uint8Array(b);
    for (const [i, x] of flips) b[i % b.length] ^= x;
    if (cut !== null) b = b.subarray(0, cut % (b.length + 1));
    const out = new Uint8Array(b.length + tail.length);
    out.set(b);
    out.set(tail, b.length);
    return out;
  });

/**
 * Sends each input on a live connection (a new one after the hub closed the
 * last), and checks between inputs that the hub still answers a ping.
 */
async function throwAtHub(inputs: Uint8Array[]): Promise<{ closes: Map<number, number> }> {
  const closes = new Map<number, number>();
  let c = await WsClient.connect(hub.wsUrl);
  let closedCode: number | undefined;
  const watch = (cl: WsClient) => void cl.closed.then(({ code }) => (closedCode = code));
  watch(c);
  for (let i = 0; i < inputs.length; i++) {
    if (closedCode !== undefined) {
      closes.set(closedCode, (closes.get(closedCode) ?? 0) + 1);
      closedCode = undefined;
      c = await WsClient.connect(hub.wsUrl);
      watch(c);
    }
    c.sendRaw(inputs[i]);
    if (i % 50 === 49) {
      // A ping through the same socket orders after everything sent before it.
      await Promise.race([c.request({ t: 'ping' }).catch(() => undefined), c.closed]);
    }
  }
  await c.close();
  return { closes };
}

describe('hostile input', () => {
  it('random mutations of every frame type get errors or a close, never a crash or a changed log', async () => {
    const baseline = rssBytes(hub.proc.pid!);
    const frames = fc.sample(mutatedFrame, RUNS).map((f) => {
      try {
        return encodeCbor(f);
      } catch {
        return new Uint8Array([0xf7]);
      }
    });
    const raw = fc.sample(mutatedBytes, RUNS);
    const { closes } = await throwAtHub([...frames, ...raw]);
    if (process.env.SHOW_FUZZ) console.log('closes', [...closes]);
    // Every close the hub chose is one of its documented 4xxx codes.
    for (const code of closes.keys()) expect(code, `close code ${code}`).toBeGreaterThanOrEqual(4000);
    await healthy();
    expect(await readAll('canary')).toBe(canary);
    expect(rssBytes(hub.proc.pid!) - baseline).toBeLessThan(128 * MiB);
  });

  it('deep nesting, huge declared lengths, invalid UTF-8 and unknown types are refused', async () => {
    const c = await WsClient.connect(hub.wsUrl);
    const deep = new Uint8Array(100_000).fill(0x81); // [[[[…]]]] 100,000 deep
    const hugeBytes = new Uint8Array([0xa2, 0x61, 0x74, 0x67, ...bytes('produce'), 0x62, ...bytes('id'), 0x5b, 0, 0, 0, 1, 0, 0, 0, 0]); // a byte string of 2^32 declared
    const hugeArray = new Uint8Array([0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
    const badTopic = new Uint8Array([0xa3, 0x61, 0x74, 0x68, ...bytes('metadata'), 0x62, ...bytes('id'), 0x05, 0x65, ...bytes('topic'), 0x62, 0xc3, 0x28]);
    for (const b of [deep, hugeBytes, hugeArray, badTopic]) c.sendRaw(b);
    c.sendRaw(encodeCbor({ t: 'no-such-frame', id: 6 }));
    await waitFor(() => c.unsolicitedErrors.length >= 5, 10_000, 'five error frames');
    const byId = new Map(c.unsolicitedErrors.map((e) => [e.id, e.code]));
    expect(byId.get(5)).toMatch(/BAD_TOPIC_NAME|BAD_FRAME/);
    expect(byId.get(6)).toBe('BAD_FRAME');
    await expect(c.request({ t: 'ping' })).resolves.toMatchObject({ t: 'ok' });
    await c.close();
    await healthy();
  });

  it('a flood of tiny frames costs the flooder, not the hub or its other clients', async () => {
    const flooder = await WsClient.connect(hub.wsUrl);
    const other = await WsClient.connect(hub.wsUrl);
    const tiny = encodeCbor({ t: 'ping', id: 1 });
    const junk = new Uint8Array([0xf7]);
    const started = Date.now();
    for (let i = 0; i < (SOAK ? 500_000 : 50_000); i++) flooder.sendRaw(i % 2 ? tiny : junk);
    const ack = await other.produce('flood-other', [{ v: bytes('still served') }]);
    expect(ack.parts[0].o).toBe(0);
    expect(Date.now() - started).toBeLessThan(20_000);
    await flooder.close();
    await other.close();
    await healthy();
  });

  it('random requests on every HTTP route answer a status with a JSON error, never a 5xx from a crash', async () => {
    const paths = [
      '/',
      '/livez',
      '/healthz',
      '/metrics',
      '/v1/topics',
      '/v1/topics/canary',
      '/v1/topics/canary/records',
      '/v1/topics/canary/partitions/0/records',
      '/v1/groups',
      '/v1/groups/g',
      '/v1/connectors',
      '/v1/topics/%00',
      '/v1/topics/..%2f..',
      '/v1/topics/canary/partitions/-1/records',
    ];
    const query = fc.constantFrom('', '?offset=-1', '?offset=1e400', '?limit=abc', '?offset=0&limit=99999999', '?timestamp=x', '?maxBytes=0', '?internal=true');
    const body = fc.oneof(
      fc.json().map((s) => ({ type: 'application/json', data: s as string | Uint8Array })),
      fc.anything({ maxDepth: 4 }).map((v) => ({ type: 'application/json', data: JSON.stringify({ records: v, name: v, partitions: v, config: v }) ?? 'null' })),
      fc.anything({ maxDepth: 3 }).map((v) => ({ type: 'application/cbor', data: safeCbor({ records: [v], name: v }) })),
      fc.uint8Array({ maxLength: 256 }).map((b) => ({ type: 'application/cbor', data: b as string | Uint8Array })),
    );
    // Mostly methods a route has, so that the bodies reach the handlers; some that it has not.
    const routes: Array<[string, string]> = [
      ['POST', '/v1/topics'],
      ['PATCH', '/v1/topics/canary'],
      ['PATCH', '/v1/topics/fuzzed'],
      ['POST', '/v1/topics/canary/records'],
      ['POST', '/v1/topics/fuzzed/records'],
      ['GET', '/v1/topics/canary/partitions/0/records'],
      ['GET', '/v1/topics/canary'],
      ['POST', '/v1/groups/g/reset'],
      ['DELETE', '/v1/groups/g'],
      ['DELETE', '/v1/topics/fuzzed'],
    ];
    const request = fc.oneof(
      { weight: 4, arbitrary: fc.record({ route: fc.constantFrom(...routes), query, body }).map(({ route, query, body }) => ({ method: route[0], path: route[1], query, body })) },
      { weight: 1, arbitrary: fc.record({ method: fc.constantFrom('GET', 'POST', 'PATCH', 'DELETE', 'PUT', 'OPTIONS'), path: fc.constantFrom(...paths), query, body }) },
    );
    const samples = fc.sample(request, SOAK ? 3_000 : 300);
    const statuses = new Map<number, number>();
    for (const r of samples) {
      // Deleting the canary is a legal request; keep it to prove the log is untouched.
      if (r.method === 'DELETE' && r.path === '/v1/topics/canary') continue;
      const res = await fetch(`${hub.url}${r.path}${r.query}`, { method: r.method, headers: { 'content-type': r.body.type }, body: r.method === 'GET' ? undefined : (r.body.data as BodyInit) });
      statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
      const text = await res.text();
      if (res.status >= 400 && res.status !== 404 && r.path !== '/') expect(() => JSON.parse(text), `${r.method} ${r.path}${r.query} → ${res.status} ${text.slice(0, 80)}`).not.toThrow();
      expect(res.status, `${r.method} ${r.path}${r.query} → ${res.status} ${text.slice(0, 200)}`).toBeLessThan(500);
    }
    if (process.env.SHOW_FUZZ) console.log('statuses', [...statuses]);
    expect([...statuses.keys()].some((s) => s >= 400)).toBe(true);
    await healthy();
    expect(await readAll('canary')).toBe(canary);
  });
});

function safeCbor(v: unknown): Uint8Array {
  try {
    return encodeCbor(v);
  } catch {
    return new Uint8Array([0xf6]);
  }
}
