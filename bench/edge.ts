/**
 * Readings per second through the edge worker: simulated devices POST batches
 * of readings (with x-sequence, so every request is idempotent) to the worker
 * running in workerd (Miniflare), which forwards each to a real hub on
 * loopback. Everything on one machine: the figure is the worker + hub path
 * locally, not Cloudflare's edge.
 *
 *   node --import tsx bench/edge.ts [--quick]
 */
import { pathToFileURL } from 'node:url';
import { startHub } from '../harness/hub.ts';
import { buildWorker, countRecords, DEVICE_SECRET, deviceToken, ingest, removeBundle, startEdge } from '../harness/edge.ts';

export interface BenchResult {
  scenario: 'edge';
  system: string;
  eventsPerSec: number;
  notes?: string;
}

interface Run {
  devices: number;
  batch: number;
  requestsPerDevice: number;
}

async function drive(edgeUrl: string, topic: string, tokens: string[], run: Run, firstSequence: number): Promise<number> {
  const started = performance.now();
  await Promise.all(
    tokens.map(async (token, d) => {
      for (let r = 0; r < run.requestsPerDevice; r++) {
        const seq = firstSequence + r * run.batch;
        const readings = Array.from({ length: run.batch }, (_, i) => ({ n: seq + i, celsius: 20.5, humidity: 41, battery: 3.71 }));
        const res = await ingest(edgeUrl, topic, readings, { token, sequence: seq });
        if (res.status !== 200) throw new Error(`device ${d} seq ${seq}: HTTP ${res.status} ${JSON.stringify(res.body)}`);
      }
    }),
  );
  return (performance.now() - started) / 1000;
}

export async function runEdgeBench(opts: { quick: boolean }): Promise<BenchResult[]> {
  const [hub, bundle] = await Promise.all([startHub(), buildWorker()]);
  const edge = await startEdge(bundle, { HUB_URL: hub.url, DEVICE_JWT_SECRET: DEVICE_SECRET, ALLOWED_TOPICS: 'sensors.*' });
  const results: BenchResult[] = [];
  try {
    const devices = opts.quick ? 20 : 100;
    const tokens = await Promise.all(Array.from({ length: devices }, (_, d) => deviceToken({ sub: `bench-${d}` })));
    const runs: Run[] = opts.quick
      ? [
          { devices, batch: 1, requestsPerDevice: 25 },
          { devices, batch: 50, requestsPerDevice: 10 },
        ]
      : [
          { devices, batch: 1, requestsPerDevice: 50 },
          { devices, batch: 10, requestsPerDevice: 30 },
          { devices, batch: 100, requestsPerDevice: 10 },
        ];
    for (const run of runs) {
      const topic = `sensors.bench-b${run.batch}`;
      // Warm-up: JIT, connections, topic creation; its sequences come first.
      const warm = { ...run, requestsPerDevice: 2 };
      await drive(edge.url, topic, tokens, warm, 0);
      const seconds = await drive(edge.url, topic, tokens, run, 2 * run.batch);
      const readings = run.devices * run.batch * run.requestsPerDevice;
      const expected = readings + run.devices * run.batch * warm.requestsPerDevice;
      const landed = await countRecords(hub.url, topic);
      if (landed !== expected) throw new Error(`${topic}: ${landed} records in the hub, expected ${expected}`);
      results.push({
        scenario: 'edge',
        system: `tributary edge worker (workerd) → hub, batch ${run.batch}`,
        eventsPerSec: Math.round(readings / seconds),
        notes: `${run.devices} devices × ${run.requestsPerDevice} requests × ${run.batch} readings, x-sequence on, one request in flight per device; ${Math.round((run.devices * run.requestsPerDevice) / seconds)} requests/s; all ${expected} records verified in the hub`,
      });
    }
  } finally {
    await edge.dispose();
    await hub.stop();
    hub.cleanup();
    removeBundle(bundle);
  }
  return results;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const results = await runEdgeBench({ quick: process.argv.includes('--quick') });
  for (const r of results) console.log(`${r.system}: ${r.eventsPerSec.toLocaleString('en-US')} readings/s  (${r.notes})`);
}
