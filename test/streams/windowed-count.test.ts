/**
 * Windowed counting against a real hub: the count over 100,000 keyed events
 * equals the count computed from the input itself, every window's updates
 * are exactly 1, 2, …, n (nothing lost, nothing counted twice), and late
 * events inside the grace period count while later ones are dropped and
 * counted in the metric; an instance restarted under the same instanceId
 * restores its state rather than having its fence taken for a duplicate,
 * also when it comes back as two instances with a fixed share of the
 * partitions each (staticAssignment by topic).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient, type Client } from '../../web-client/node.ts';
import { stream } from '../../streams/index.ts';
import { partitionForKey } from '../../protocol/index.ts';
import { startHub, type Hub } from '../../harness/hub.ts';
import { createTopic, directCounts, keyedEvents, produceInput, waitFor, windowResults } from './fixtures.ts';

let hub: Hub;
let client: Client;

beforeAll(async () => {
  hub = await startHub();
  client = createClient({ url: hub.wsUrl, outbox: 'memory', name: 'windowed-count' });
});
afterAll(async () => {
  await client?.close();
  await hub?.stop();
  hub?.cleanup();
});

describe('windowed count (real hub)', () => {
  it('a tumbling count over 100,000 keyed events equals the count computed from the input', async () => {
    await createTopic(hub.url, 'clicks', 4);
    await createTopic(hub.url, 'clicks-per-10s', 4);
    const events = keyedEvents(100_000, 500, 1_700_000_000_000, 3);
    await produceInput(client, 'clicks', 4, events);

    const app = stream(client, { applicationId: 'clickcount', httpUrl: hub.url, staticAssignment: 'all' });
    app.from('clicks').groupByKey().window({ tumblingMs: 10_000, graceMs: 60_000 }).count({ name: 'per-10s' }).to('clicks-per-10s');
    await app.start();
    await waitFor(() => app.metrics().processed === 100_000, 240_000, 'all input processed');
    await app.flush();
    await app.close();

    const { latest, updates } = await windowResults(hub.url, 'clicks-per-10s');
    const expected = directCounts(events, 10_000);
    expect(latest.size).toBe(expected.size);
    for (const [w, n] of expected) expect(latest.get(w), w).toBe(n);
    for (const [w, u] of updates) expect(u, w).toEqual(Array.from({ length: expected.get(w)! }, (_, i) => i + 1));
    expect(app.metrics().lateDropped).toBe(0);
  }, 300_000);

  it('an instance restarted under the same instanceId restores its state (each ownership has its own changelog producer)', async () => {
    await createTopic(hub.url, 'reclicks', 2);
    await createTopic(hub.url, 'reclicks-per-10s', 2);
    const events = keyedEvents(4_000, 50, 1_700_000_000_000, 3);
    const run = async (n: number, staticAssignment: 'all' | Record<string, number[]>) => {
      const app = stream(client, { applicationId: 'recount', httpUrl: hub.url, staticAssignment, instanceId: 'fixed' });
      app.from('reclicks').groupByKey().window({ tumblingMs: 10_000, graceMs: 60_000 }).count({ name: 'per-10s' }).to('reclicks-per-10s');
      await app.start();
      await waitFor(() => app.metrics().processed >= n, 120_000, `${n} records processed`);
      await app.close();
      return app.metrics();
    };
    await produceInput(client, 'reclicks', 2, events.slice(0, 2_000), 'reclicks-1');
    await run(2_000, 'all');
    await produceInput(client, 'reclicks', 2, events.slice(2_000), 'reclicks-2');
    // Restarted as two instances with a fixed share each (as bench/streams.ts scales out), both under the same instanceId:
    // same changelog producer as the first run would make a fence a "duplicate" of the old one: nothing restored, counts restart.
    const perPartition = [0, 1].map((p) => events.slice(2_000).filter((e) => partitionForKey(e.key, 2) === p).length);
    const second = await Promise.all([0, 1].map((p) => run(perPartition[p], { reclicks: [p] })));
    for (const m of second) expect(m.restoredRecords).toBeGreaterThan(0);
    expect(second.map((m) => m.processed)).toEqual(perPartition);

    const { latest, updates } = await windowResults(hub.url, 'reclicks-per-10s');
    const expected = directCounts(events, 10_000);
    expect(latest.size).toBe(expected.size);
    for (const [w, u] of updates) expect(u, w).toEqual(Array.from({ length: expected.get(w)! }, (_, i) => i + 1));
  }, 300_000);

  it('late events inside grace are counted; later ones are dropped and counted in a metric', async () => {
    await createTopic(hub.url, 'late-in', 1);
    await createTopic(hub.url, 'late-out', 1);
    const t0 = 1_700_000_000_000; // a multiple of 1000: window [t0, t0+1000)
    const ts = [t0 + 100, t0 + 1200, t0 + 900 /* late, in grace */, t0 + 1600, t0 + 950 /* past grace */, t0 + 1700];
    await produceInput(
      client,
      'late-in',
      1,
      ts.map((timestamp, i) => ({ key: 'sensor', value: { i }, timestamp })),
    );

    const app = stream(client, { applicationId: 'late', httpUrl: hub.url, staticAssignment: 'all' });
    app.from('late-in').groupByKey().window({ tumblingMs: 1000, graceMs: 500 }).count({ name: 'c' }).to('late-out');
    await app.start();
    await waitFor(() => app.metrics().processed === ts.length, 30_000, 'input processed');
    await app.flush();
    const text = await app.metricsText();
    await app.close();

    expect(app.metrics()).toMatchObject({ lateAccepted: 1, lateDropped: 1 });
    // The same counters in the Prometheus text, and the partition fully processed: lag 0 records.
    const a = 'application="late"';
    const p = `${a},topic="late-in",partition="0"`;
    for (const line of [
      `tributary_streams_late_accepted_records_total{${a}} 1`,
      `tributary_streams_late_dropped_records_total{${a}} 1`,
      `tributary_streams_processed_records_total{${a}} 6`,
      `tributary_streams_produced_records_total{${a}} 5`,
      `tributary_streams_position{${p}} 6`,
      `tributary_streams_lag_records{${p}} 0`,
    ])
      expect(text.split('\n'), line).toContain(line);
    expect(text).toMatch(/^# TYPE tributary_streams_late_dropped_records_total counter$/m);
    expect(text).toMatch(new RegExp(`^tributary_streams_event_time_lag_ms\\{${p}\\} \\d+$`, 'm'));
    const { latest } = await windowResults(hub.url, 'late-out');
    expect(Object.fromEntries(latest)).toEqual({ [`sensor@${t0}`]: 2, [`sensor@${t0 + 1000}`]: 3 });
  }, 60_000);

  it("a 200-character applicationId (repeated in its repartition topic) gets producer ids within the hub's 255 bytes, and restores", async () => {
    const id = 'a'.repeat(200);
    await createTopic(hub.url, 'longid-in', 2);
    await createTopic(hub.url, 'longid-out', 2);
    const events = keyedEvents(2_000, 20, 1_700_000_000_000, 3);
    const run = async (n: number) => {
      // A 100-character instanceId too: hashed inside the changelog producer id.
      const app = stream(client, { applicationId: id, httpUrl: hub.url, staticAssignment: 'all', instanceId: 'i'.repeat(100) });
      app
        .from<{ i: number }>('longid-in')
        .groupBy((r) => `g${r.value.i % 7}`, { name: 'g' })
        .window({ tumblingMs: 10_000, graceMs: 60_000 })
        .count({ name: 'c' })
        .to('longid-out');
      await app.start();
      await waitFor(() => app.metrics().processed >= n, 120_000, `${n} records processed`);
      await app.flush();
      await app.close();
      return app.metrics();
    };
    await produceInput(client, 'longid-in', 2, events.slice(0, 1_000), 'longid-1');
    await run(2_000); // 1,000 inputs, then each through the repartition topic
    await produceInput(client, 'longid-in', 2, events.slice(1_000), 'longid-2');
    expect((await run(2_000)).restoredRecords).toBeGreaterThan(0);
    const { latest } = await windowResults(hub.url, 'longid-out');
    const expected = new Map<string, number>();
    for (const e of events) {
      const k = `g${(e.value as { i: number }).i % 7}@${e.timestamp - (e.timestamp % 10_000)}`;
      expected.set(k, (expected.get(k) ?? 0) + 1);
    }
    expect(Object.fromEntries(latest)).toEqual(Object.fromEntries(expected));
  }, 240_000);
});
