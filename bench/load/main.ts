/**
 * A load process: `node --import tsx bench/load/main.ts '<job json>'`.
 * Runs one job against one system and prints `RESULT {json}`. The harness
 * starts it in a process of its own (with the fd limit raised), so the load's
 * CPU and sockets never share an event loop with the harness or the server.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { RESULT_PREFIX, type Job, type LoadResult, type Target } from './job.ts';

interface Driver {
  produce?(t: Target, p: Extract<Job, { scenario: 'produce' }>['params']): Promise<LoadResult>;
  replay?(t: Target, p: Extract<Job, { scenario: 'replay' }>['params']): Promise<LoadResult>;
  latency?(t: Target, p: Extract<Job, { scenario: 'latency' }>['params']): Promise<LoadResult>;
  fanout?(t: Target, p: Extract<Job, { scenario: 'fanout' }>['params']): Promise<LoadResult>;
  connections?(t: Target, p: Extract<Job, { scenario: 'connections' }>['params']): Promise<LoadResult>;
}

async function loadDriver(kind: Target['kind']): Promise<Driver> {
  switch (kind) {
    case 'ws':
      return import('./ws-driver.ts');
    case 'nats':
      return import('./nats-driver.ts');
    case 'redis':
      return import('./redis-driver.ts');
    case 'mqtt':
      return import('./mqtt-driver.ts');
  }
}

/** Event-loop stalls of the load process longer than this are noted in the result. */
const LOOP_STALL_NOTE_MS = 50;

/** The whole job may not outlive this, whatever happens inside. */
const HARD_LIMIT_MS = 20 * 60_000;

async function main(): Promise<void> {
  const raw = process.argv[2];
  if (!raw) throw new Error('usage: main.ts <job json>');
  const job = JSON.parse(raw) as Job;
  const killer = setTimeout(() => {
    process.stderr.write(`load job exceeded ${HARD_LIMIT_MS} ms\n`);
    process.exit(3);
  }, HARD_LIMIT_MS);
  killer.unref();
  const driver = await loadDriver(job.target.kind);
  const fn = driver[job.scenario] as ((t: Target, p: unknown) => Promise<LoadResult>) | undefined;
  if (!fn) throw new Error(`${job.target.kind} driver cannot run ${job.scenario}`);
  const loop = monitorEventLoopDelay({ resolution: 10 });
  loop.enable();
  const result = await fn(job.target, job.params);
  loop.disable();
  // A stalled load loop inflates latencies: say so next to the figures.
  const maxMs = loop.max / 1e6;
  if (maxMs > LOOP_STALL_NOTE_MS) result.notes.push(`load process event loop stalled up to ${maxMs.toFixed(0)} ms (p99 ${(loop.percentile(99) / 1e6).toFixed(1)} ms)`);
  process.stdout.write(`${RESULT_PREFIX}${JSON.stringify(result)}\n`);
  // Client libraries keep timers and sockets around; the answer is out, so leave now.
  process.exit(0);
}

main().catch((e: unknown) => {
  process.stderr.write(`load failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exit(2);
});
