/**
 * Text that is not UTF-8 and values nested without end, against a real hub:
 * a key, a header name or a header value with invalid UTF-8 is refused with
 * BAD_RECORD and nothing appended (WebSocket and HTTP with a CBOR body) —
 * never stored with replacement characters; other text fields of a frame
 * are refused too; nesting past LIMITS.maxNestingDepth is refused with a
 * message that says so, not "Maximum call stack size exceeded".
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { encodeCbor } from '../../protocol/codec.ts';
import { LIMITS } from '../../protocol/limits.ts';
import { useHub } from '../../harness/hub-fixture.ts';
import { bytes, text, WsClient } from '../helpers/ws-client.ts';

const hub = useHub();
let c: WsClient;

beforeAll(async () => {
  for (const name of ['utf8ws', 'utf8http', 'deep']) {
    const res = await fetch(`${hub.url}/v1/topics`, { method: 'POST', body: JSON.stringify({ name, partitions: 1 }) });
    expect(res.status).toBe(201);
  }
  c = hub.own(await WsClient.connect(hub.wsUrl));
  await c.hello();
});

/** The marker "\u0001\u0002" encodes as the bytes 01 02; poison() swaps them for c3 28, an invalid UTF-8 sequence of the same length. */
const MARK = '\u0001\u0002';
function poison(encoded: Uint8Array): Uint8Array {
  const out = Uint8Array.from(encoded);
  let n = 0;
  for (let i = 0; i + 1 < out.length; i++) {
    if (out[i] === 0x01 && out[i + 1] === 0x02) {
      out[i] = 0xc3;
      out[i + 1] = 0x28;
      n++;
    }
  }
  expect(n).toBe(1);
  return out;
}

async function logEnd(topic: string): Promise<number> {
  const res = await fetch(`${hub.url}/v1/topics/${topic}`);
  const body = (await res.json()) as { offsets: Array<{ logEnd: number }> };
  return body.offsets[0].logEnd;
}

/** Sends a hand-made frame and resolves with the error that answers it. */
async function refusedRaw(encode: (id: number) => Uint8Array): Promise<{ code: string; message: string }> {
  let answered: unknown;
  try {
    answered = await c.requestRaw(encode);
  } catch (e) {
    return e as { code: string; message: string };
  }
  throw new Error(`expected an error, got ${JSON.stringify(answered)}`);
}

const records = {
  key: [{ k: `k${MARK}`, v: bytes('x') }],
  'header 0 name': [{ k: 'k', v: bytes('x'), h: [[`n${MARK}`, 'v']] }],
  'header 0 value': [{ k: 'k', v: bytes('x'), h: [['n', `v${MARK}`]] }],
};

describe('invalid UTF-8 is refused, never rewritten', () => {
  it.each(Object.entries(records))('WebSocket: a %s with invalid UTF-8 → BAD_RECORD, nothing appended', async (field, recs) => {
    const err = await refusedRaw((id) => poison(encodeCbor({ t: 'produce', id, topic: 'utf8ws', records: recs })));
    expect(err.code).toBe('BAD_RECORD');
    expect(err.message).toContain(`record 0: ${field} is not valid UTF-8`);
    expect(await logEnd('utf8ws')).toBe(0);
  });

  it('WebSocket: invalid UTF-8 in another text field (the producer id) → BAD_FRAME, nothing appended', async () => {
    const err = await refusedRaw((id) => poison(encodeCbor({ t: 'produce', id, topic: 'utf8ws', pid: `p${MARK}`, seq: 0, records: [{ v: bytes('x') }] })));
    expect(err.code).toBe('BAD_FRAME');
    expect(err.message).toMatch(/pid is not valid UTF-8/);
    expect(await logEnd('utf8ws')).toBe(0);
  });

  it.each(Object.entries(records))('HTTP, CBOR body: a %s with invalid UTF-8 → 400 BAD_RECORD, nothing appended', async (field, recs) => {
    const res = await fetch(`${hub.url}/v1/topics/utf8http/records`, {
      method: 'POST',
      headers: { 'content-type': 'application/cbor' },
      body: Buffer.from(poison(encodeCbor({ records: recs }))),
    });
    expect(res.status).toBe(400);
    const body = (await res.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe('BAD_RECORD');
    expect(body.error.message).toContain(`record 0: ${field} is not valid UTF-8`);
    expect(await logEnd('utf8http')).toBe(0);
  });

  it('a real U+FFFD (valid UTF-8) in a key is stored as it was sent', async () => {
    const ack = await c.produce('utf8ws', [{ k: 'k\uFFFD(', v: bytes('x'), h: [['n\uFFFD', 'v\uFFFD']] }]);
    expect(ack.parts).toHaveLength(1);
    const s = await c.subscribe('utf8ws', { from: 'earliest' });
    const [rec] = await c.waitForRecords(s.sub, 1);
    expect(rec.key).toBe('k\uFFFD(');
    expect(rec.headers).toEqual([['n\uFFFD', 'v\uFFFD']]);
    expect(text(rec.value)).toBe('x');
  });
});

describe('nesting is bounded', () => {
  const deep = 100_000;

  it(`HTTP JSON body with ${deep} nested [ → 400 BAD_JSON naming the limit`, async () => {
    const res = await fetch(`${hub.url}/v1/topics/deep/records`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: `{"records":[{"value":${'['.repeat(deep)}${']'.repeat(deep)}}]}`,
    });
    expect(res.status).toBe(400);
    const body = (await res.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe('BAD_JSON');
    expect(body.error.message).toBe(`body is nested deeper than ${LIMITS.maxNestingDepth} levels (arrays and objects; the limit is maxNestingDepth)`);
  });

  it('HTTP JSON body at the limit is fine', async () => {
    const inner = LIMITS.maxNestingDepth - 3; // {records:[{value: …}]} takes three levels
    const res = await fetch(`${hub.url}/v1/topics/deep/records`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: `{"records":[{"value":${'['.repeat(inner)}${']'.repeat(inner)}}]}`,
    });
    expect(res.status).toBe(200);
  });

  it(`HTTP CBOR body with ${deep} nested arrays → 400 BAD_CBOR naming the limit`, async () => {
    const body = new Uint8Array(deep + 1).fill(0x81); // [[[[ … 0 ]]]]
    body[deep] = 0x00;
    const res = await fetch(`${hub.url}/v1/topics/deep/records`, { method: 'POST', headers: { 'content-type': 'application/cbor' }, body });
    expect(res.status).toBe(400);
    const json = (await res.json()) as { error: { code: string; message: string } };
    expect(json.error.code).toBe('BAD_CBOR');
    expect(json.error.message).toMatch(new RegExp(`^body is nested deeper than ${LIMITS.maxNestingDepth} levels`));
  });

  it(`WebSocket frame with ${deep} nested arrays → BAD_FRAME naming the limit; the connection stays usable`, async () => {
    const frame = new Uint8Array(deep + 1).fill(0x81);
    frame[deep] = 0x00;
    const before = c.unsolicitedErrors.length;
    c.sendRaw(frame);
    await c.until(() => c.unsolicitedErrors.length > before, 10_000, 'the error frame');
    const err = c.unsolicitedErrors[before] as unknown as { code: string; message: string };
    expect(err.code).toBe('BAD_FRAME');
    expect(err.message).toMatch(new RegExp(`^frame is nested deeper than ${LIMITS.maxNestingDepth} levels`));
    expect((await c.request({ t: 'ping' })).t).toBe('ok');
  });

  it('a record value stored as JSON nested past the limit reads back over HTTP as bytes, not an error', async () => {
    const json = `${'['.repeat(200)}${']'.repeat(200)}`;
    await c.produce('deep', [{ v: bytes(json), e: 1 }]);
    const res = await fetch(`${hub.url}/v1/topics/deep/partitions/0/records?offset=0&limit=10`);
    expect(res.status).toBe(200);
    const body = (await res.json()) as { records: Array<{ value: unknown }> };
    expect(body.records.at(-1)!.value).toEqual({ $base64: Buffer.from(json).toString('base64') });
  });
});
