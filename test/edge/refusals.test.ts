/**
 * What the edge worker refuses, in workerd in front of a real hub: bad, expired
 * and foreign tokens, malformed and oversized bodies, wrong routes; and what a
 * device is told when the hub is down. Nothing refused reaches the log.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { encodeCbor } from '../../protocol/codec.ts';
import { startHub, type Hub } from '../../harness/hub.ts';
import { buildWorker, countRecords, DEVICE_SECRET, deviceToken, ingest, removeBundle, startEdge, type Edge } from '../../harness/edge.ts';

let hub: Hub;
let bundle: string;
let edge: Edge;
const TOPIC = 'sensors.refused';

beforeAll(async () => {
  [hub, bundle] = await Promise.all([startHub(), buildWorker()]);
  edge = await startEdge(bundle, {
    HUB_URL: hub.url,
    DEVICE_JWT_SECRET: DEVICE_SECRET,
    ALLOWED_TOPICS: 'sensors.*, lab.exact',
    MAX_BODY_BYTES: '4096',
    MAX_READINGS_PER_REQUEST: '10',
    MAX_READING_BYTES: '256',
  });
});

afterAll(async () => {
  await edge?.dispose();
  await hub?.stop();
  hub?.cleanup();
  if (bundle) removeBundle(bundle);
});

function expectError(res: { status: number; body: any }, status: number, code: string, retriable = false): void {
  expect(res.status, JSON.stringify(res.body)).toBe(status);
  expect(res.body).toEqual({ error: { code, message: expect.any(String), retriable } });
}

describe('device tokens', () => {
  it('refuses missing, bad-signature, expired, non-device and foreign-topic tokens, and appends nothing', async () => {
    const reading = { temperature: 19 };
    expectError(await ingest(edge.url, TOPIC, reading), 401, 'UNAUTHENTICATED');
    expectError(await ingest(edge.url, TOPIC, reading, { token: 'not-a-jwt' }), 401, 'TOKEN_INVALID');
    // RFC 6750 §2.1: characters outside b64token are refused before any verification, as on the hub.
    const oddChars = await ingest(edge.url, TOPIC, reading, { token: 'ab,cd;ef' });
    expectError(oddChars, 401, 'TOKEN_INVALID');
    expect(oddChars.body.error.message).toMatch(/characters a bearer token cannot hold/);
    const forged = await deviceToken({ sub: 'd1', secret: 'another-secret-that-is-32-bytes-long!!' });
    expectError(await ingest(edge.url, TOPIC, reading, { token: forged }), 401, 'TOKEN_INVALID');
    const expired = await deviceToken({ sub: 'd1', expiresInS: -3600 });
    expectError(await ingest(edge.url, TOPIC, reading, { token: expired }), 401, 'TOKEN_EXPIRED');
    // A hub user token signed with the same key is not a device token.
    const userToken = await deviceToken({ sub: 'd1', kind: undefined });
    expectError(await ingest(edge.url, TOPIC, reading, { token: userToken }), 401, 'TOKEN_INVALID');
    const foreign = await deviceToken({ sub: 'd1', topics: ['sensors.kitchen.*'] });
    expectError(await ingest(edge.url, TOPIC, reading, { token: foreign }), 403, 'FORBIDDEN');
    // `prefix.*` does not match the prefix itself.
    const stem = await deviceToken({ sub: 'd1', topics: ['sensors.refused.*'] });
    expectError(await ingest(edge.url, TOPIC, reading, { token: stem }), 403, 'FORBIDDEN');
    const noTopics = await deviceToken({ sub: 'd1', topics: undefined });
    expectError(await ingest(edge.url, TOPIC, reading, { token: noTopics }), 403, 'FORBIDDEN');
    expect(await countRecords(hub.url, TOPIC)).toBe(0);
  });

  it('a token for every topic is still held to ALLOWED_TOPICS', async () => {
    const token = await deviceToken({ sub: 'd2', topics: ['*'] });
    expectError(await ingest(edge.url, 'metrics.cpu', { v: 1 }, { token }), 403, 'FORBIDDEN');
    expect(await countRecords(hub.url, 'metrics.cpu')).toBe(0);
    expect((await ingest(edge.url, 'lab.exact', { v: 1 }, { token })).status).toBe(200);
    expectError(await ingest(edge.url, 'lab.exact.more', { v: 1 }, { token }), 403, 'FORBIDDEN');
  });

  it('accepts tokens signed by a key of DEVICE_JWKS and refuses HMAC tokens when only a JWKS is set', async () => {
    const { publicKey, privateKey } = await generateKeyPair('ES256');
    const jwk = { ...(await exportJWK(publicKey)), kid: 'sensor-key-1', alg: 'ES256', use: 'sig' };
    const jwksEdge = await startEdge(bundle, { HUB_URL: hub.url, DEVICE_JWKS: JSON.stringify({ keys: [jwk] }), ALLOWED_TOPICS: '*' });
    try {
      const now = Math.floor(Date.now() / 1000);
      const token = await new SignJWT({ kind: 'device', topics: ['sensors.jwks'] })
        .setProtectedHeader({ alg: 'ES256', kid: 'sensor-key-1' })
        .setSubject('es-device')
        .setExpirationTime(now + 60)
        .sign(privateKey);
      expect((await ingest(jwksEdge.url, 'sensors.jwks', { ok: 1 }, { token })).status).toBe(200);
      const hmac = await deviceToken({ sub: 'es-device', topics: ['sensors.jwks'] });
      expectError(await ingest(jwksEdge.url, 'sensors.jwks', { ok: 2 }, { token: hmac }), 401, 'TOKEN_INVALID');
      expect(await countRecords(hub.url, 'sensors.jwks')).toBe(1);
    } finally {
      await jwksEdge.dispose();
    }
  });
});

describe('bodies and routes', () => {
  it('malformed and oversized bodies get 4xx and nothing is appended', async () => {
    const token = await deviceToken({ sub: 'd3' });
    const send = (body: unknown, contentType?: string, sequence?: string) => ingest(edge.url, TOPIC, body, { token, contentType, sequence });
    expectError(await send('{"temperature": '), 400, 'BAD_JSON');
    expectError(await send(new Uint8Array([0xff, 0xff, 0x1c])), 400, 'BAD_JSON');
    expectError(await send(new Uint8Array([0x9f, 0x01]), 'application/cbor'), 400, 'BAD_CBOR');
    expectError(await send(''), 400, 'BAD_REQUEST');
    expectError(await send('42'), 400, 'BAD_RECORD');
    expectError(await send([]), 400, 'BAD_REQUEST');
    expectError(await send([{ ok: 1 }, 'not an object']), 400, 'BAD_RECORD');
    expectError(await send(encodeCbor([{ raw: new Uint8Array([1, 2]) }]), 'application/cbor'), 400, 'BAD_RECORD');
    expectError(await send('temperature=19', 'application/x-www-form-urlencoded'), 400, 'BAD_REQUEST');
    expectError(await send({ ok: 1 }, undefined, '-1'), 400, 'BAD_SEQUENCE');
    expectError(await send({ ok: 1 }, undefined, 'abc'), 400, 'BAD_SEQUENCE');
    expectError(await send({ pad: 'x'.repeat(5000) }), 413, 'BODY_TOO_LARGE');
    expectError(await send(Array.from({ length: 11 }, (_, i) => ({ i }))), 413, 'BATCH_TOO_LARGE');
    expectError(await send([{ ok: 1 }, { pad: 'x'.repeat(300) }]), 413, 'RECORD_TOO_LARGE');
    expect(await countRecords(hub.url, TOPIC)).toBe(0);
  });

  it('a body is refused as soon as it passes the limit, without waiting for its end', async () => {
    const token = await deviceToken({ sub: 'd3' });
    const chunk = new TextEncoder().encode(`[${'{"a":1},'.repeat(125)}`); // 1001 bytes
    let sent = 0;
    // 5 chunks (past the 4096-byte limit) and then a body that never ends, with
    // no Content-Length: only a limit checked while streaming can answer this.
    const stream = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent < 5) {
          sent++;
          controller.enqueue(chunk);
        }
        return sent < 5 ? undefined : new Promise<void>(() => undefined);
      },
    });
    const aborter = new AbortController();
    try {
      const res = await fetch(`${edge.url}/ingest/${TOPIC}`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: stream,
        duplex: 'half',
        signal: aborter.signal,
      } as RequestInit);
      expect(res.status).toBe(413);
      expect(((await res.json()) as any).error.code).toBe('BODY_TOO_LARGE');
    } finally {
      aborter.abort();
    }
  });

  it('answers 404 off the ingest route and 405 for other methods, in the error shape', async () => {
    const notFound = await fetch(`${edge.url}/v1/topics/x/records`, { method: 'POST' });
    expect(notFound.status).toBe(404);
    expect(((await notFound.json()) as any).error).toMatchObject({ code: 'NOT_FOUND', retriable: false });
    const wrongMethod = await fetch(`${edge.url}/ingest/${TOPIC}`);
    expect(wrongMethod.status).toBe(405);
    expect(wrongMethod.headers.get('allow')).toBe('POST');
    expect(((await wrongMethod.json()) as any).error.code).toBe('METHOD_NOT_ALLOWED');
    const badTopic = await ingest(edge.url, 'bad%20topic', { ok: 1 }, { token: await deviceToken({ sub: 'd4' }) });
    expectError(badTopic, 400, 'BAD_TOPIC_NAME');
  });
});

describe('when the hub cannot answer', () => {
  it('tells the device to retry: 503, retriable, with Retry-After', async () => {
    const down = await startEdge(bundle, { HUB_URL: 'http://127.0.0.1:9', DEVICE_JWT_SECRET: DEVICE_SECRET, RETRY_AFTER_S: '3' });
    try {
      const res = await ingest(down.url, 'sensors.down', { t: 1 }, { token: await deviceToken({ sub: 'd5' }), sequence: 0 });
      expectError(res, 503, 'NOT_READY', true);
      expect(res.headers.get('retry-after')).toBe('3');
    } finally {
      await down.dispose();
    }
  });

  it('a misconfigured worker answers 503 retriable, so devices keep their readings', async () => {
    const broken = await startEdge(bundle, { HUB_URL: 'http://127.0.0.1:9' });
    try {
      const res = await ingest(broken.url, 'sensors.x', { t: 1 }, { token: await deviceToken({ sub: 'd6' }) });
      expectError(res, 503, 'NOT_READY', true);
      expect(res.body.error.message).toMatch(/DEVICE_JWT_SECRET/);
    } finally {
      await broken.dispose();
    }
  });
});
