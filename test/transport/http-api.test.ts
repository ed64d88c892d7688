/**
 * Every HTTP route of a real hub, with its errors: a typed JSON error body
 * and a 4xx for bad input, never a 500.
 */
import { describe, expect, it } from 'vitest';
import { decodeCbor, encodeCbor } from '../../protocol/codec.ts';
import { useHub } from '../../harness/hub-fixture.ts';

const MAX_BODY = 16 * 1024;
const hub = useHub({ args: ['--max-http-body-bytes', String(MAX_BODY)] });

interface ErrorBody {
  error: { code: string; message: string; retriable: boolean; [k: string]: unknown };
}

async function call(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<{ status: number; json: any; headers: Headers }> {
  const init: RequestInit = { method, headers: { ...headers } };
  if (body !== undefined) {
    init.body = typeof body === 'string' || body instanceof Uint8Array ? (body as BodyInit) : JSON.stringify(body);
    if (!headers['content-type']) (init.headers as Record<string, string>)['content-type'] = 'application/json';
  }
  const res = await fetch(`${hub.url}${path}`, init);
  const raw = new Uint8Array(await res.arrayBuffer());
  let json: unknown = null;
  if (raw.length) json = (res.headers.get('content-type') ?? '').includes('cbor') ? decodeCbor(raw) : JSON.parse(new TextDecoder().decode(raw));
  return { status: res.status, json, headers: res.headers };
}

function expectError(r: { status: number; json: ErrorBody }, status: number, code: string): void {
  expect(r.status).toBe(status);
  expect(r.json.error.code).toBe(code);
  expect(typeof r.json.error.message).toBe('string');
  expect(typeof r.json.error.retriable).toBe('boolean');
}

describe('health and metrics', () => {
  it('GET /livez and /healthz answer 200 on a ready hub', async () => {
    expect((await call('GET', '/livez')).status).toBe(200);
    expect(await call('GET', '/healthz')).toMatchObject({ status: 200, json: { status: 'ok' } });
  });

  it('GET /metrics is Prometheus text with the hub counters', async () => {
    await call('POST', '/v1/topics/metered/records', { records: [{ value: 1 }] });
    const res = await fetch(`${hub.url}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toContain('text/plain');
    const text = await res.text();
    for (const name of ['tributary_connections', 'tributary_produced_records_total', 'tributary_produce_latency_seconds_bucket', 'tributary_storage_bytes', 'tributary_delivered_bytes_total']) {
      expect(text).toContain(name);
    }
    expect(/tributary_produced_records_total (\d+)/.exec(text)?.[1]).toBe('1');
  });
});

describe('topics', () => {
  it('creates, lists, describes, changes and deletes a topic', async () => {
    const created = await call('POST', '/v1/topics', { name: 'crud', partitions: 2, config: { retentionMs: 60_000 } });
    expect(created.status).toBe(201);
    expect(created.json).toMatchObject({ name: 'crud', partitions: 2, config: { retentionMs: 60_000 } });
    expect(created.json.offsets).toEqual([
      { partition: 0, earliest: 0, highWatermark: 0, logEnd: 0, bytes: 0 },
      { partition: 1, earliest: 0, highWatermark: 0, logEnd: 0, bytes: 0 },
    ]);
    expectError(await call('POST', '/v1/topics', { name: 'crud', partitions: 2 }), 409, 'TOPIC_EXISTS');

    const list = await call('GET', '/v1/topics');
    expect(list.json.topics.map((t: { name: string }) => t.name)).toContain('crud');

    await call('POST', '/v1/topics/crud/records', { records: [{ value: 'x', partition: 1 }] });
    const desc = await call('GET', '/v1/topics/crud');
    expect(desc.json.offsets[1]).toMatchObject({ partition: 1, earliest: 0, logEnd: 1, highWatermark: 1 });
    expect(desc.json.offsets[1].bytes).toBeGreaterThan(0);

    const patched = await call('PATCH', '/v1/topics/crud', { partitions: 4, config: { retentionMs: 120_000, fsync: 'interval' } });
    expect(patched.status).toBe(200);
    expect(patched.json).toMatchObject({ partitions: 4, config: { retentionMs: 120_000, fsync: 'interval' } });
    expect(patched.json.warnings[0]).toMatch(/keyed records now map to different partitions/);
    expectError(await call('PATCH', '/v1/topics/crud', { partitions: 2 }), 400, 'BAD_CONFIG');
    expectError(await call('PATCH', '/v1/topics/crud', { config: { retentionMs: 'long' } }), 400, 'BAD_CONFIG');
    expectError(await call('PATCH', '/v1/topics/crud', { replicas: 3 }), 400, 'BAD_CONFIG');
    expectError(await call('PATCH', '/v1/topics/nope', { partitions: 2 }), 404, 'UNKNOWN_TOPIC');

    const del = await call('DELETE', '/v1/topics/crud');
    expect(del.status).toBe(204);
    expectError(await call('GET', '/v1/topics/crud'), 404, 'UNKNOWN_TOPIC');
    expectError(await call('DELETE', '/v1/topics/crud'), 404, 'UNKNOWN_TOPIC');
  });

  it('refuses bad topic input with 400s', async () => {
    expectError(await call('POST', '/v1/topics', { name: 'bad name!', partitions: 1 }), 400, 'BAD_TOPIC_NAME');
    expectError(await call('POST', '/v1/topics', { name: '..', partitions: 1 }), 400, 'BAD_TOPIC_NAME');
    expectError(await call('POST', '/v1/topics', { name: 'p0', partitions: 0 }), 400, 'BAD_CONFIG');
    expectError(await call('POST', '/v1/topics', { name: 'p1', partitions: 'many' }), 400, 'BAD_CONFIG');
    expectError(await call('POST', '/v1/topics', { name: 'p2', config: { nope: 1 } }), 400, 'BAD_CONFIG');
    expectError(await call('POST', '/v1/topics', '{"name": "broken"'), 400, 'BAD_JSON');
    expectError(await call('POST', '/v1/topics', '[1,2]'), 400, 'BAD_JSON');
    expectError(await call('POST', '/v1/topics', ''), 400, 'BAD_JSON');
    expectError(await call('GET', '/v1/topics/unknown-topic'), 404, 'UNKNOWN_TOPIC');
  });
});

describe('records', () => {
  it('produces JSON records and reads them back from an offset with limit and nextOffset', async () => {
    const records = Array.from({ length: 10 }, (_, i) => ({ key: `k${i % 2}`, value: { i }, headers: [['h', 'v']], partition: 0 }));
    const p = await call('POST', '/v1/topics/json/records', { records });
    expect(p.status).toBe(200);
    expect(p.json.offsets).toEqual(records.map((_, i) => ({ partition: 0, offset: i })));

    const page = await call('GET', '/v1/topics/json/partitions/0/records?offset=3&limit=4');
    expect(page.status).toBe(200);
    expect(page.json.records.map((r: { offset: number }) => r.offset)).toEqual([3, 4, 5, 6]);
    expect(page.json.records[0]).toMatchObject({ offset: 3, key: 'k1', value: { i: 3 }, headers: [['h', 'v']] });
    expect(page.json.nextOffset).toBe(7);
    const rest = await call('GET', `/v1/topics/json/partitions/0/records?offset=${page.json.nextOffset}`);
    expect(rest.json.records.map((r: { offset: number }) => r.offset)).toEqual([7, 8, 9]);
    expect(rest.json.nextOffset).toBe(10);
    const atEnd = await call('GET', '/v1/topics/json/partitions/0/records?offset=10');
    expect(atEnd.json).toMatchObject({ records: [], nextOffset: 10 });
    const small = await call('GET', '/v1/topics/json/partitions/0/records?offset=0&maxBytes=1');
    expect(small.json.records.length).toBeGreaterThan(0); // at least one batch
  });

  it('reads from a timestamp', async () => {
    await call('POST', '/v1/topics/timed/records', { records: [{ value: 'old', timestamp: 1_000 }] });
    // The old record carries timestamp 1000; the new one is stamped on append, at or after t.
    const t = Date.now();
    await call('POST', '/v1/topics/timed/records', { records: [{ value: 'new' }] });
    const res = await call('GET', `/v1/topics/timed/partitions/0/records?timestamp=${t}`);
    expect(res.json.records.map((r: { value: unknown }) => r.value)).toEqual(['new']);
  });

  it('speaks CBOR both ways when asked', async () => {
    const body = encodeCbor({
      records: [
        { k: 'c', v: new Uint8Array([1, 2, 3]) },
        { v: encodeCbor({ a: 1 }), e: 2 },
      ],
    });
    const p = await call('POST', '/v1/topics/cbor/records', body, { 'content-type': 'application/cbor', accept: 'application/cbor' });
    expect(p.status).toBe(200);
    expect(p.headers.get('content-type')).toBe('application/cbor');
    expect(p.json.offsets).toEqual([
      { partition: 0, offset: 0 },
      { partition: 0, offset: 1 },
    ]);
    const r = await call('GET', '/v1/topics/cbor/partitions/0/records?offset=0', undefined, { accept: 'application/cbor' });
    expect(r.json.records[0]).toMatchObject({ offset: 0, key: 'c', encoding: 'bytes' });
    expect(Array.from(r.json.records[0].value as Uint8Array)).toEqual([1, 2, 3]);
    expect(r.json.records[1].encoding).toBe('cbor');
    const asJson = await call('GET', '/v1/topics/cbor/partitions/0/records?offset=0');
    expect(asJson.json.records[0].value).toEqual({ $base64: 'AQID' });
    expect(asJson.json.records[1].value).toEqual({ a: 1 });
    const err = await call('POST', '/v1/topics/cbor/records', new Uint8Array([0xff, 0x00]), { 'content-type': 'application/cbor' });
    expectError(err, 400, 'BAD_CBOR');
  });

  it('answers bad produce input with 4xx and a JSON error body', async () => {
    expectError(await call('POST', '/v1/topics/bad/records', '{"records": [}'), 400, 'BAD_JSON');
    expectError(await call('POST', '/v1/topics/bad/records', { records: [] }), 400, 'BAD_RECORD');
    expectError(await call('POST', '/v1/topics/bad/records', { records: 'x' }), 400, 'BAD_RECORD');
    expectError(await call('POST', '/v1/topics/bad/records', { records: [{ key: 'no value' }] }), 400, 'BAD_RECORD');
    expectError(await call('POST', '/v1/topics/bad/records', { records: [{ value: 1, key: 5 }] }), 400, 'BAD_RECORD');
    expectError(await call('POST', '/v1/topics/bad/records', { records: [{ value: 1, timestamp: 'now' }] }), 400, 'BAD_RECORD');
    expectError(await call('POST', '/v1/topics/bad/records', { records: [{ value: 1, timestamp: Date.now() + 86_400_000 }] }), 400, 'TIMESTAMP_IN_FUTURE');
    expectError(await call('POST', '/v1/topics/bad/records', { records: [{ value: 1, partition: 9 }] }), 400, 'BAD_PARTITION');
    expectError(await call('POST', '/v1/topics/bad/records', { records: [{ value: { $base64: '!!' } }] }), 400, 'BAD_RECORD');
    expectError(await call('POST', '/v1/topics/bad/records', { records: [{ value: 1 }], sequence: 3 }), 400, 'BAD_SEQUENCE');
    expectError(await call('POST', '/v1/topics/bad/records', { records: [{ value: 1 }], producerId: 'p', sequence: -1 }), 400, 'BAD_SEQUENCE');
    expectError(await call('POST', '/v1/topics/bad%20name/records', { records: [{ value: 1 }] }), 400, 'BAD_TOPIC_NAME');
  });

  it('refuses an oversized body with 413 BODY_TOO_LARGE', async () => {
    const big = JSON.stringify({ records: [{ value: 'x'.repeat(MAX_BODY) }] });
    expectError(await call('POST', '/v1/topics/big/records', big), 413, 'BODY_TOO_LARGE');
    // The hub keeps serving.
    expect((await call('GET', '/healthz')).status).toBe(200);
  });

  it('answers bad reads with 4xx: unknown topic, bad partition, bad offsets, offset out of range (416)', async () => {
    await call('POST', '/v1/topics/reads/records', { records: [{ value: 1 }, { value: 2 }] });
    expectError(await call('GET', '/v1/topics/no-such/partitions/0/records?offset=0'), 404, 'UNKNOWN_TOPIC');
    expectError(await call('GET', '/v1/topics/reads/partitions/5/records?offset=0'), 400, 'BAD_PARTITION');
    expectError(await call('GET', '/v1/topics/reads/partitions/x/records?offset=0'), 400, 'BAD_PARTITION');
    expectError(await call('GET', '/v1/topics/reads/partitions/0/records?offset=abc'), 400, 'BAD_REQUEST');
    expectError(await call('GET', '/v1/topics/reads/partitions/0/records?offset=-1'), 400, 'BAD_REQUEST');
    expectError(await call('GET', '/v1/topics/reads/partitions/0/records?offset=0&timestamp=1'), 400, 'BAD_REQUEST');
    expectError(await call('GET', '/v1/topics/reads/partitions/0/records?limit=0'), 400, 'BAD_REQUEST');
    const out = await call('GET', '/v1/topics/reads/partitions/0/records?offset=50');
    expectError(out, 416, 'OFFSET_OUT_OF_RANGE');
    expect(out.json.error).toMatchObject({ earliest: 0, logEnd: 2 });
  });
});

describe('routing', () => {
  it('answers an unknown route 404 and a wrong method 405 with Allow', async () => {
    expectError(await call('GET', '/v2/nothing'), 404, 'NOT_FOUND');
    const wrong = await call('PUT', '/v1/topics/x');
    expectError(wrong, 405, 'METHOD_NOT_ALLOWED');
    expect(wrong.headers.get('allow')).toBe('GET, PATCH, DELETE');
    expectError(await call('DELETE', '/v1/topics'), 405, 'METHOD_NOT_ALLOWED');
    expectError(await call('POST', '/healthz'), 405, 'METHOD_NOT_ALLOWED');
  });

  it('never answers 500 to garbage', async () => {
    const garbage: Array<[string, string, string | Uint8Array, Record<string, string>?]> = [
      ['POST', '/v1/topics', '\u0000\u0001'],
      ['POST', '/v1/topics', 'null'],
      ['POST', '/v1/topics', '{"name": {"a": 1}}'],
      ['PATCH', '/v1/topics/json', '"str"'],
      ['POST', '/v1/topics/json/records', '{"records": [null]}'],
      ['POST', '/v1/topics/json/records', '{"records": [{"value": 1, "headers": "h"}]}'],
      ['POST', '/v1/topics/json/records', '{"records": [{"value": 1, "headers": [[1, 2]]}]}'],
      ['POST', '/v1/topics/json/records', new Uint8Array([0xa1, 0x67]), { 'content-type': 'application/cbor' }],
      ['POST', '/v1/topics/json/records', encodeCbor({ records: [{ v: 'not bytes' }] }), { 'content-type': 'application/cbor' }],
      ['POST', '/v1/topics/json/records', encodeCbor([1, 2]), { 'content-type': 'application/cbor' }],
      ['GET', '/v1/topics/json/partitions/99999/records', ''],
      ['GET', '/v1/topics/%ZZ', ''],
    ];
    for (const [method, path, body, headers] of garbage) {
      const res = await fetch(`${hub.url}${path}`, { method, body: method === 'GET' ? undefined : (body as BodyInit), headers: headers ?? { 'content-type': 'application/json' } });
      expect(res.status, `${method} ${path}`).toBeGreaterThanOrEqual(400);
      expect(res.status, `${method} ${path}`).toBeLessThan(500);
      const json = (await res.json()) as ErrorBody;
      expect(typeof json.error.code).toBe('string');
    }
  });
});
