/**
 * One instance of the bench's stream application in a worker thread of its
 * own: its own client connection, its own statically assigned input
 * partitions, the same applicationId as its siblings (as N processes of one
 * application would run; Kafka Streams scales the same way, by stream threads
 * and instances). The main thread (bench/streams.ts) starts N of these.
 *
 * Protocol with the main thread: 'ready' once connected, warmed up and built → 'go' →
 * start() → 'done' with this instance's clock (absolute ms) and counts; then
 * it waits to be terminated.
 */
import { performance as nodePerformance } from 'node:perf_hooks';
import { parentPort, workerData } from 'node:worker_threads';
import { waitFor } from '../harness/wait.ts';
import { stream } from '../streams/index.ts';
import { createClient } from '../web-client/node.ts';
import { threadCpuUs } from './lib/proc-cpu.ts';
import { PIPELINES, type PipelineName } from './streams-pipelines.ts';

export interface InstanceData {
  wsUrl: string;
  httpUrl: string;
  applicationId: string;
  pipeline: PipelineName;
  /** Input partitions of this instance. */
  partitions: number[];
  /** Input events in those partitions: the instance is done when it has processed them all. */
  events: number;
  creditBytes: number;
  /** The applicationId of an untimed pass over the same input first, or undefined for none. */
  warmUp?: string;
}

export interface InstanceDone {
  type: 'done';
  /** performance.timeOrigin + performance.now() after start() and at the end of the last flush. */
  t0: number;
  t1: number;
  /** Events processed after t0. */
  timed: number;
  produced: number;
  /** This thread's own CPU µs from 'go' to t1 (Linux /proc/thread-self; NaN elsewhere). */
  threadCpuUs: number;
  /** Share of t0..t1 this thread's event loop was busy (not waiting for I/O). */
  busy: number;
}

/** How long an instance may take over its share (a loaded machine is slow, not wrong). */
const RUN_DEADLINE_MS = 600_000;

const data = workerData as InstanceData;
const port = parentPort;
if (!port) throw new Error('bench/streams-instance.ts runs in a worker thread');
const now = () => performance.timeOrigin + performance.now();

const client = createClient({ url: data.wsUrl, outbox: 'memory', name: `${data.applicationId}-${data.partitions.join('-')}`, maxInFlightBatches: 8 });
const build = (applicationId: string) => {
  const a = stream(client, { applicationId, httpUrl: data.httpUrl, staticAssignment: { in: data.partitions }, creditBytes: data.creditBytes });
  PIPELINES[data.pipeline](a);
  return a;
};
// The warm-up pass (its own applicationId, untimed): a fresh thread's JIT is cold, and a long-running app is not.
if (data.warmUp) {
  const warm = build(data.warmUp);
  await warm.start();
  await waitFor(() => warm.metrics().processed >= data.events, RUN_DEADLINE_MS, `${data.warmUp} processed`);
  await warm.flush();
  await warm.close();
}
const app = build(data.applicationId);
await new Promise<void>((resolve) => {
  port.once('message', () => resolve());
  port.postMessage({ type: 'ready' });
});
const cpu0 = threadCpuUs();
await app.start();
const elu0 = nodePerformance.eventLoopUtilization();
const t0 = now();
const before = app.metrics().processed;
await waitFor(() => app.metrics().processed >= data.events, RUN_DEADLINE_MS, `${data.applicationId} ${data.partitions.join(',')} processed`, 1);
await app.flush();
const done: InstanceDone = {
  type: 'done',
  t0,
  t1: now(),
  timed: data.events - before,
  produced: app.metrics().produced,
  threadCpuUs: threadCpuUs() - cpu0,
  busy: nodePerformance.eventLoopUtilization(elu0).utilization,
};
await app.close();
await client.close();
port.postMessage(done);
// Stays until the main thread terminates it, after it has read the CPU figures: a thread's exit (its heap torn down) is not the run's work.
port.once('message', () => undefined);
