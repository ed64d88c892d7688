/**
 * `from(topic, { values: 'view' })`: a JSON object value is a read-only view
 * whose fields are decoded as they are read. What it must give is what
 * JSON.parse gives; what differs (read-only, malformed parts throw when
 * read) is checked too. Then a pipeline over views through a real Task.
 */
import { describe, expect, it } from 'vitest';
import { lazyInputRecords } from './fixtures.ts';
import { crc32c, encodeCbor } from '../../protocol/index.ts';
import { BatchBuilder } from '../../web-client/batch-builder.ts';
import { jsonView } from '../../streams/json-view.ts';
import { stream, type StreamsClient } from '../../streams/index.ts';
import { zeroMetrics } from '../../streams/nodes.ts';
import { Task } from '../../streams/task.ts';
import { Slots } from '../../streams/output-lanes.ts';

const enc = new TextEncoder();
const view = (text: string) => jsonView(enc.encode(text)) as Record<string, unknown>;

const TEXTS = [
  '{"a":1,"b":"x","c":true,"d":null,"e":-12.5e3,"f":[1,{"g":2}],"h":{"i":"j"},"a":7}',
  '{}',
  ' { "k" : "v" ,\n "n" : 0 } ',
  '{"s":"é\\n","t":"\\u0041","u":"a\\"b"}',
  '{"big":12345678901234567890,"neg":-0,"fr":0.1,"exp":1E+2,"long":-123456789012345}',
  '{"__proto__":{"x":1},"y":2}',
  '{"toString":3,"constructor":"c"}',
  '{"a":1,"\\u0061":2}',
  '{"\\u0061":2,"a":1}',
  '{"é":3,"a":4}',
];
const NAMES = ['a', 'b', 'c', 'd', 'e', 'f', 'h', 'k', 'n', 's', 't', 'u', 'big', 'neg', 'fr', 'exp', 'long', 'y', 'é', 'missing', 'toString', 'hasOwnProperty', 'constructor', 'toJSON', '__proto__'];

describe('JSON views', () => {
  it('every field read, key list, spread and JSON.stringify are what JSON.parse gives', () => {
    for (const text of TEXTS) {
      const parsed = JSON.parse(text) as Record<string, unknown>;
      for (const name of NAMES) expect([text, name, view(text)[name]]).toEqual([text, name, parsed[name]]);
      const v = view(text);
      expect(Object.keys(v)).toEqual(Object.keys(parsed));
      expect({ ...v }).toEqual({ ...parsed });
      expect(JSON.stringify(v)).toBe(JSON.stringify(parsed));
      expect('missing' in v).toBe(false);
      for (const k of Object.keys(parsed)) expect(k in v).toBe(true);
      // -0 stays -0 and a field read twice is the same value.
      expect(Object.is(v.neg, parsed.neg)).toBe(true);
      expect(v.f).toBe(v.f);
    }
  });

  it('is read-only, looks like a plain object, and throws VALUE_NOT_JSON where a malformed part is read', () => {
    const v = view('{"a":1}');
    expect(() => {
      v.a = 2;
    }).toThrow(expect.objectContaining({ code: 'VALUE_READ_ONLY' }));
    expect(() => delete v.a).toThrow(expect.objectContaining({ code: 'VALUE_READ_ONLY' }));
    expect(v instanceof Object && !Array.isArray(v) && typeof v === 'object').toBe(true);
    expect(`${String(v)} ${v.a as number}`).toBe('[object Object] 1');
    for (const bad of ['{"a":1,', '{"a":01}', '{"a":1}x', '{"a" 1}', '{"a":"\\x"}']) expect(() => view(bad).a).toThrow(expect.objectContaining({ code: 'VALUE_NOT_JSON' }));
    // Only the part read is checked: a malformed field elsewhere throws when it is read (or the whole value is).
    const half = view('{"a":[1,,2],"b":1}');
    expect(half.b).toBe(1);
    expect(() => half.a).toThrow(expect.objectContaining({ code: 'VALUE_NOT_JSON' }));
    expect(() => Object.keys(half)).toThrow(expect.objectContaining({ code: 'VALUE_NOT_JSON' }));
  });
});

/** The client is not reached by process(): no flush here. */
const offline: StreamsClient = {
  subscribe: () => {
    throw new Error('not used');
  },
};

function outputsOf(values: 'decoded' | 'view', batch: Uint8Array): Array<[unknown, unknown, unknown]> {
  const app = stream(offline, { applicationId: 'app' });
  const s = app.from<{ kind?: string; c?: number }>('in', { values });
  s.filter((r) => r.value?.kind === 'temp')
    .mapValues((r) => ({ ...r.value, f: (r.value.c ?? 0) * 2 }))
    .to('out');
  s.filter((r) => r.key === 'keep').to('same');
  const root = app.topology.roots.get('in')!;
  const settings = {
    applicationId: 'app',
    instanceId: 'i',
    changelogTopic: 'cl',
    maxPendingRecords: 1e9,
    maxBatchRecords: 1000,
    minBatchRecords: 1,
    requestsPerLane: 1,
    restoreTimeoutMs: 1000,
    produceTimeoutMs: 1000,
  };
  const env = { client: offline as never, metrics: zeroMetrics(), partitionCount: () => 1, lookup: () => undefined, slots: new Slots(1), commit: async () => undefined };
  const t = new Task(root, 0, settings, env);
  const lazy = lazyInputRecords(batch);
  for (const r of lazy) t.process(r);
  return t.pendingOutputs().flatMap((o) => o.events.map((e): [unknown, unknown, unknown] => [o.topic, e.key, e.value]));
}

describe("from(topic, { values: 'view' })", () => {
  it('a pipeline over views writes what it writes over decoded values; values that are not JSON objects come decoded', () => {
    const b = new BatchBuilder('input');
    for (let n = 0; n < 40; n++) b.addJson(n % 7 === 0 ? 'keep' : `k${n}`, JSON.stringify({ n, kind: n % 2 ? 'temp' : 'hum', c: n, pad: 'é'.repeat(n % 3) }), n, []);
    b.addJson('keep', '[1,2]', 40, []);
    b.addJson('keep', '"temp"', 41, []);
    b.addEncoded('keep', encodeCbor({ kind: 'temp', c: 5 }), 'cbor', 42, []);
    b.addEncoded('keep', null, 'json', 43, []);
    const batch = b.seal(0, crc32c);
    const decoded = outputsOf('decoded', batch);
    expect(decoded.filter(([topic]) => topic === 'out')).toHaveLength(21);
    expect(outputsOf('view', batch)).toEqual(decoded);
  });
});
