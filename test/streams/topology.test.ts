/**
 * The builder's steps run through a real Task, record by record, without a
 * hub: what each step forwards, which partition and sequence every output
 * gets, and the window metrics. (Flushing needs the hub: test/streams/*-hub tests.)
 */
import { describe, expect, it } from 'vitest';
import { lazyInputRecords } from './fixtures.ts';
import { crc32c, encodeCbor, partitionForKey } from '../../protocol/index.ts';
import { BatchBuilder } from '../../web-client/batch-builder.ts';
import { WindowResultValue } from '../../streams/aggregate-nodes.ts';
import { WindowStore } from '../../streams/window-store.ts';
import { stream, type StreamsClient } from '../../streams/index.ts';
import type { RootDef } from '../../streams/builder.ts';
import { zeroMetrics, type StreamMetrics } from '../../streams/nodes.ts';
import { Task } from '../../streams/task.ts';
import { Slots } from '../../streams/output-lanes.ts';
import type { ConsumedRecord } from '../../web-client/index.ts';

/** The client is not reached by process(): these tests never flush. */
const offline: StreamsClient = {
  subscribe: () => {
    throw new Error('not used');
  },
};

function harness(build: (app: ReturnType<typeof stream>) => void, counts: Record<string, number> = {}, tables: Record<string, Record<string, unknown>> = {}) {
  const app = stream(offline, { applicationId: 'app' });
  build(app);
  const metrics: StreamMetrics = zeroMetrics();
  const task = (root: RootDef, partition = 0) =>
    new Task(
      root,
      partition,
      {
        applicationId: 'app',
        instanceId: 'i',
        changelogTopic: app.topology.changelogTopic(root),
        maxPendingRecords: 1e9,
        maxBatchRecords: 1000,
        minBatchRecords: 1,
        requestsPerLane: 1,
        restoreTimeoutMs: 1000,
        produceTimeoutMs: 1000,
      },
      {
        client: offline as never,
        metrics,
        partitionCount: (t) => counts[t] ?? 1,
        lookup: (t, k) => tables[t]?.[k],
        slots: new Slots(1),
        commit: async () => undefined,
      },
    );
  return { app, metrics, task, root: (topic: string) => app.topology.roots.get(topic)! };
}

let offset = 0;
const rec = (value: unknown, key: string | null = null, timestamp = 0, partition = 0): ConsumedRecord => ({ topic: 'in', partition, offset: offset++, timestamp, key, value, headers: [] });
const values = (t: Task, topic?: string) =>
  t
    .pendingOutputs()
    .filter((o) => topic === undefined || o.topic === topic)
    .flatMap((o) => o.events.map((e) => e.value));

describe('stateless steps', () => {
  it('filter + map + to: outputs land in their key partition with dense sequences per partition', () => {
    const h = harness(
      (app) =>
        app
          .from<{ n: number }>('in')
          .filter((r) => r.value.n % 2 === 0)
          .map((r) => ({ key: `k${r.value.n % 5}`, value: { m: r.value.n * 10 } }))
          .to('out'),
      { out: 3 },
    );
    const t = h.task(h.root('in'));
    for (let n = 0; n < 100; n++) t.process(rec({ n }));
    const outs = t.pendingOutputs();
    let total = 0;
    for (const o of outs) {
      expect(o.topic).toBe('out');
      expect(o.firstSeq).toBe(0);
      for (const e of o.events) expect(partitionForKey(e.key as string, 3)).toBe(o.partition);
      total += o.events.length;
    }
    expect(total).toBe(50);
    expect(h.metrics.processed).toBe(100);
  });

  it('lazy input records: a value no step replaced goes out as stored, {...r} in map keeps the value, a windowed count is JSON.stringify of its result', () => {
    const h = harness(
      (app) => {
        const s = app.from<{ n: number }>('in');
        s.filter((r) => r.key !== 'drop').to('same');
        s.selectKey((r) => `re-${String(r.key)}`).to('rekeyed');
        s.map((r) => ({ ...r, key: 'spread' })).to('spread');
        const counts = s.groupByKey().window({ tumblingMs: 1000 }).count({ name: 'c' }).toStream();
        counts.to('counts');
        // The sink's partition memo (kept on the window) holds only for the same key and partition count.
        counts.to('counts-7');
        counts.map((r) => ({ ...r, key: `x${String(r.key)}` })).to('counts-7-rekeyed');
      },
      { counts: 5, 'counts-7': 7, 'counts-7-rekeyed': 7 },
    );
    // A batch as the hub stores it, read as a lazyValues subscription reads it: CBOR values that re-encoding would turn into JSON.
    const b = new BatchBuilder('input');
    for (let n = 0; n < 6; n++) b.addEncoded(n === 5 ? 'drop' : `k${n % 2}`, encodeCbor({ n }), 'cbor', 1_000 + n * 100, []);
    const lazy = lazyInputRecords(b.seal(0, crc32c));
    const t = h.task(h.root('in'));
    for (const r of lazy) t.process(r);
    const events = (topic: string) => t.pendingOutputs().find((o) => o.topic === topic)!.events;
    for (const [topic, n] of [
      ['counts', 5],
      ['counts-7', 7],
      ['counts-7-rekeyed', 7],
    ] as const) {
      const outs = t.pendingOutputs().filter((o) => o.topic === topic);
      expect(outs.reduce((a, o) => a + o.events.length, 0)).toBe(6);
      for (const o of outs) for (const e of o.events) expect(o.partition).toBe(partitionForKey(e.key as string, n));
    }
    expect(events('same').map((e) => [e.key, e.value, e.encoding])).toEqual([0, 1, 2, 3, 4].map((n) => [`k${n % 2}`, { n }, 'cbor']));
    expect(events('rekeyed').map((e) => [e.key, e.value, e.encoding])).toEqual([0, 1, 2, 3, 4, 5].map((n) => [`re-${n === 5 ? 'drop' : `k${n % 2}`}`, { n }, 'cbor']));
    expect(events('spread').map((e) => [e.key, e.value])).toEqual([0, 1, 2, 3, 4, 5].map((n) => ['spread', { n }]));
    const countEvents = t
      .pendingOutputs()
      .filter((o) => o.topic === 'counts')
      .flatMap((o) => o.events)
      .sort((a, b) => a.timestamp! - b.timestamp!);
    expect(countEvents.map((e) => e.value)).toEqual([
      { key: 'k0', start: 1000, end: 2000, value: 1 },
      { key: 'k1', start: 1000, end: 2000, value: 1 },
      { key: 'k0', start: 1000, end: 2000, value: 2 },
      { key: 'k1', start: 1000, end: 2000, value: 2 },
      { key: 'k0', start: 1000, end: 2000, value: 3 },
      { key: 'drop', start: 1000, end: 2000, value: 1 },
    ]);
    // The prepared text is exactly what JSON.stringify writes; other values fall back to encoding the object.
    const slot = new WindowStore('w', false).slot('k"é', -5, 7);
    for (const v of [0, -0, 3, -12.5, 1e21, 2 ** 53]) expect(new WindowResultValue('k"é', -5, 7, v, slot).jsonText()).toBe(JSON.stringify({ key: 'k"é', start: -5, end: 7, value: v }));
    expect(new WindowResultValue('k"é', -5, 7, { n: 1 }, slot).jsonText()).toBeUndefined();
    expect(new WindowResultValue('other', -5, 7, 1, slot).jsonText()).toBeUndefined();
    // The number written after the head's bytes: the same bytes as the text (integers, a head not ASCII, a long head, and the fallback for a number not an integer).
    // (a window's real head, ~70 bytes, is copied by set(), the short ones by a loop)
    for (const head of ['{"key":"k","value":', '{"key":"é","value":', '{"key":"room-123","start":1700000000000,"end":1700000010000,"value":']) {
      const a = new BatchBuilder('p');
      const b = new BatchBuilder('p');
      for (const v of [0, -0, 7, 10, 99, 100, -1, -10, 123456789, 2 ** 53 - 1, -(2 ** 53 - 1), 2 ** 53, -12.5, 1e21]) {
        a.addJsonNumber('k', new TextEncoder().encode(head), v, new TextEncoder().encode('}'), 1_000, []);
        b.addJson('k', `${head}${JSON.stringify(v)}}`, 1_000, []);
      }
      expect(a.seal(0, crc32c)).toEqual(b.seal(0, crc32c));
    }
  });

  it('branch sends a record to the first matching branch only; merge joins streams again; flatMap fans out', () => {
    const h = harness((app) => {
      const [small, big] = app.from<number>('in').branch(
        (r) => r.value < 10,
        (r) => r.value < 100,
      );
      small
        .flatMapValues((r) => [r.value, r.value])
        .merge(big.mapValues((r) => -r.value))
        .to('out');
    });
    const t = h.task(h.root('in'));
    for (const v of [1, 50, 500, 2]) t.process(rec(v));
    expect(values(t)).toEqual([1, 1, -50, 2, 2]);
  });

  it('a null key goes to the input partition modulo the output count, the same on every run', () => {
    const h = harness((app) => app.from('in').to('out'), { out: 4 });
    const t = h.task(h.root('in'), 6);
    t.process(rec('x', null, 0, 6));
    expect(t.pendingOutputs()[0].partition).toBe(2);
  });

  it('stream–table join: inner drops records without a row, left keeps them with null', () => {
    const tables = { rooms: { r1: { floor: 3 } } };
    const h = harness(
      (app) => {
        const rooms = app.table<{ floor: number }>('rooms');
        const s = app.from<{ c: number }>('in');
        s.join(rooms, (r, room) => ({ c: r.value.c, floor: room.floor })).to('inner');
        s.join(rooms, (r, room) => ({ c: r.value.c, floor: room?.floor ?? null }), { left: true }).to('left');
      },
      {},
      tables,
    );
    const t = h.task(h.root('in'));
    t.process(rec({ c: 20 }, 'r1'));
    t.process(rec({ c: 21 }, 'r2'));
    expect(values(t, 'inner')).toEqual([{ c: 20, floor: 3 }]);
    expect(values(t, 'left')).toEqual([
      { c: 20, floor: 3 },
      { c: 21, floor: null },
    ]);
  });
});

describe('re-keying and aggregation', () => {
  it('groupBy writes through the repartition topic keyed by the new key; the aggregate runs on that topic', () => {
    const h = harness(
      (app) =>
        app
          .from<{ room: string; c: number }>('in')
          .groupBy((r) => r.value.room, { name: 'by-room' })
          .aggregate(
            () => ({ n: 0, sum: 0 }),
            (a, r) => ({ n: a.n + 1, sum: a.sum + r.value.c }),
          )
          .to('out'),
      { 'app-by-room-repartition': 2 },
    );
    expect([...h.app.topology.roots.keys()]).toEqual(['in', 'app-by-room-repartition']);
    expect(h.app.topology.changelogTopic(h.root('app-by-room-repartition'))).toBe('app-by-room-changelog');
    const src = h.task(h.root('in'));
    for (const [room, c] of [
      ['a', 1],
      ['b', 2],
      ['a', 3],
    ] as const)
      src.process(rec({ room, c }, 'sensor-1'));
    const re = src.pendingOutputs();
    expect(re.every((o) => o.topic === 'app-by-room-repartition')).toBe(true);
    const agg = h.task(h.root('app-by-room-repartition'));
    for (const o of re) for (const e of o.events) agg.process(rec(e.value, e.key as string));
    const byKey = new Map<string, unknown>();
    for (const o of agg.pendingOutputs()) for (const e of o.events) byKey.set(e.key as string, e.value);
    expect(Object.fromEntries(byKey)).toEqual({ a: { n: 2, sum: 4 }, b: { n: 1, sum: 2 } });
  });

  it('groupByKey without a key change needs no repartition; after a map it does', () => {
    const h = harness((app) => {
      app.from('in').groupByKey().count({ name: 'plain' });
      app
        .from('in2')
        .map((r) => ({ key: 'x', value: r.value }))
        .groupByKey()
        .count({ name: 'rekeyed' });
    });
    expect([...h.app.topology.roots.keys()]).toEqual(['in', 'in2', 'app-groupby-1-repartition']);
    expect(h.root('in').stores).toEqual([{ name: 'plain', kind: 'kv' }]);
  });
});

describe('windows', () => {
  it('tumbling count with grace: late records inside grace are counted, later ones dropped and counted in the metric', () => {
    const h = harness((app) => app.from('in').groupByKey().window({ tumblingMs: 1000, graceMs: 500 }).count({ name: 'w' }).to('out'));
    const t = h.task(h.root('in'));
    t.process(rec(1, 'k', 100)); // window [0,1000)
    t.process(rec(1, 'k', 1200)); // stream time 1200: [0,1000) ended, in grace until 1500
    t.process(rec(1, 'k', 900)); // late, inside grace: counted
    t.process(rec(1, 'k', 1600)); // stream time 1600: [0,1000) closed
    t.process(rec(1, 'k', 950)); // too late: dropped
    expect(h.metrics.lateAccepted).toBe(1);
    expect(h.metrics.lateDropped).toBe(1);
    const last = new Map<string, unknown>();
    for (const o of t.pendingOutputs()) for (const e of o.events) last.set(e.key as string, e.value);
    expect(last.get('k@0')).toEqual({ key: 'k', start: 0, end: 1000, value: 2 });
    expect(last.get('k@1000')).toEqual({ key: 'k', start: 1000, end: 2000, value: 2 });
  });

  it("emit 'final' sends one result per window, when stream time passes its end plus grace", () => {
    const h = harness((app) => app.from('in').groupByKey().window({ hoppingMs: 1000, advanceMs: 500, emit: 'final' }).count({ name: 'w' }).to('out'));
    const t = h.task(h.root('in'));
    for (const ts of [100, 600, 700, 1100]) t.process(rec(1, 'k', ts));
    t.process(rec(1, 'other', 5000));
    expect(values(t).filter((v) => (v as { key: string }).key === 'k')).toEqual([
      { key: 'k', start: -500, end: 500, value: 1 },
      { key: 'k', start: 0, end: 1000, value: 3 },
      { key: 'k', start: 500, end: 1500, value: 3 },
      { key: 'k', start: 1000, end: 2000, value: 1 },
    ]);
  });

  it('session windows merge records within the gap, and a record bridging two sessions merges them', () => {
    const h = harness((app) => app.from('in').groupByKey().window({ sessionGapMs: 150, graceMs: 300, emit: 'final' }).count({ name: 's' }).to('out'));
    const t = h.task(h.root('in'));
    for (const ts of [0, 50, 300, 350, 180]) t.process(rec(1, 'u', ts)); // 180 is within 150 of 50 and of 300
    t.process(rec(1, 'z', 10_000));
    expect(values(t).filter((v) => (v as { key: string }).key === 'u')).toEqual([{ key: 'u', start: 0, end: 350, value: 5 }]);
    expect(h.metrics.lateAccepted).toBe(1); // 180 came after stream time 350, within grace
  });

  it('reprocessing the same records from the same state gives the same outputs and sequences', () => {
    const build = (app: ReturnType<typeof stream>) => app.from<{ n: number }>('in').groupByKey().window({ tumblingMs: 100, graceMs: 50 }).count({ name: 'w' }).to('out');
    const input = Array.from({ length: 2000 }, (_, i) => ({ key: `k${i % 7}`, ts: 100 + i * 3 - (i % 11) * 5 }));
    const run = () => {
      const h = harness(build, { out: 3 });
      const t = h.task(h.root('in'));
      offset = 0;
      for (const x of input) t.process(rec({ n: 1 }, x.key, x.ts));
      return JSON.stringify(t.pendingOutputs());
    };
    expect(run()).toEqual(run());
  });
});

describe('back-pressure', () => {
  it('processing stops at maxPendingRecords unacknowledged outputs, resumes on the acks, and the wait is counted', async () => {
    const app = stream(offline, { applicationId: 'app' });
    app.from<{ n: number }>('in').to('out');
    const root = app.topology.roots.get('in')!;
    const metrics: StreamMetrics = zeroMetrics();
    // Acks come when the test lets them: the hub's answer is not what is under test here.
    const release: Array<() => void> = [];
    const acking: StreamsClient = {
      subscribe: () => {
        throw new Error('not used');
      },
      produceBatches: (_topic, partition) => new Promise((resolve) => release.push(() => resolve({ partition, lastOffset: 0, duplicate: false }))),
    };
    const settings = {
      applicationId: 'app',
      instanceId: 'i',
      changelogTopic: 'c',
      maxPendingRecords: 10,
      maxBatchRecords: 5,
      minBatchRecords: 1,
      requestsPerLane: 4,
      restoreTimeoutMs: 1000,
      produceTimeoutMs: 1000,
    };
    const t = new Task(root, 0, settings, { client: acking as never, metrics, partitionCount: () => 1, lookup: () => undefined, slots: new Slots(8), commit: async () => undefined });
    const done = t.processBatch(Array.from({ length: 25 }, (_, n) => rec({ n })));
    expect(done).toBeInstanceOf(Promise);
    expect(metrics.processed).toBe(10);
    expect(metrics.outputWaits).toBe(1);
    const started = performance.now();
    while (metrics.processed < 25) {
      await new Promise((r) => setTimeout(r, 5));
      for (const go of release.splice(0)) go();
      expect(performance.now() - started).toBeLessThan(30_000);
    }
    await done;
    expect(metrics.outputWaits).toBeGreaterThanOrEqual(2);
    expect(metrics.outputWaitMs).toBeGreaterThan(0);
  });
});
