/**
 * The stream-processing bench: end to end through a real hub (topics with
 * fsync always), input already in the log, an application started over it
 * from the earliest offset; events/s = input events / time from start() until
 * every input record is processed and every output, changelog entry and
 * offset is acknowledged (app.flush()). Creating internal topics and restoring
 * (empty) state before the first fetch is not timed.
 *
 *   node --import tsx bench/streams.ts [--quick] [--only stateless|windowed]
 *   STREAMS_CPU_PROF=/tmp/prof node --import tsx bench/streams.ts --only stateless   # the app's CPU over the timed part
 *   node --import tsx bench/cpuprofile-top.ts /tmp/prof/bench-stateless.cpuprofile
 *   STREAMS_HUB_CPU_PROF=/tmp/hubprof …   # the hub's main thread over each row's timed part (DIR/hub-<app>.cpuprofile)
 *   STREAMS_BENCH_EVENTS=N sets the input size.
 *   STREAMS_INSTANCES=1,2 (default): each row for 1 instance (this thread) and 2 (a worker thread each, bench/streams-instance.ts).
 *   STREAMS_WARM_UP=0: no untimed pass before each timed run.
 *   STREAMS_TASK_BATCH=N: records per stored batch in the task-alone rows (default 10,000, as preloaded).
 *
 * Each row's notes give CPU per event (app process, the app's thread, the hub)
 * and where the time went: the app thread's event-loop busy share (not
 * waiting for frames or acks) and its on-CPU share of the run (busy minus
 * on-CPU = runnable but preempted), the hub's main thread's busy share.
 *
 * Rows:
 * - stateless: filter (keeps ~half) + mapValues + to. Goal ≥ 500,000 events/s.
 *   Also with `values: 'view'` (read-only JSON views, fields decoded as read; `--only stateless` runs both).
 * - windowed: groupByKey + tumbling window count (10 s windows, 1,000 keys),
 *   every update written to the output. Goal ≥ 200,000 events/s. Also with
 *   emit 'final' (one output per key and window, when it closes): the state
 *   path without the per-update output.
 * - consume (only with --only consume): a filter that keeps nothing, to
 *   separate the input side's cost from the output side's.
 * - task (only with --only task, no hub): the same pipelines' processing
 *   alone, CPU per event (bench/streams-task.ts).
 */
import fs from 'node:fs';
import { Session } from 'node:inspector/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance as nodePerformance } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';
import { startHub, type Hub } from '../harness/hub.ts';
import { statCpuUs, threadCpuUs } from './lib/proc-cpu.ts';
import { partitionForKey } from '../protocol/index.ts';
import type { InputEvent } from '../harness/stream-input.ts';
import { createTopic } from '../harness/topic-reader.ts';
import { waitFor } from '../harness/wait.ts';
import { createClient, type Client } from '../web-client/node.ts';
import { stream, type StreamApp } from '../streams/index.ts';
import type { InstanceData, InstanceDone } from './streams-instance.ts';
import { benchInput, PIPELINES, type PipelineName } from './streams-pipelines.ts';
import { taskCpuPerEvent } from './streams-task.ts';

export interface StreamsBenchRow {
  scenario: 'streams';
  system: string;
  eventsPerSec: number;
  notes?: string;
}

const PARTITIONS = 4;
/** The preload's requests: as the app's output lanes send them (records per request, requests in flight per partition). */
const PRELOAD_RECORDS_PER_REQUEST = 10_000;
const PRELOAD_IN_FLIGHT_PER_PARTITION = 4;

/**
 * Writes the input with client.produce in the batch form, per partition up to
 * PRELOAD_IN_FLIGHT_PER_PARTITION requests of PRELOAD_RECORDS_PER_REQUEST in
 * flight: the same path and shape as the app's outputs, so its rate is the
 * machine's bound for them.
 */
async function preload(client: Client, topic: string, events: InputEvent[]): Promise<void> {
  const per = new Map<number, InputEvent[]>();
  for (const e of events) {
    const p = partitionForKey(e.key, PARTITIONS);
    let l = per.get(p);
    if (!l) per.set(p, (l = []));
    l.push(e);
  }
  await Promise.all(
    [...per].map(async ([p, list]) => {
      const chunks: number[] = [];
      for (let i = 0; i < list.length; i += PRELOAD_RECORDS_PER_REQUEST) chunks.push(i);
      let next = 0;
      const worker = async () => {
        while (next < chunks.length) {
          const i = chunks[next++];
          await client.produce(topic, list.slice(i, i + PRELOAD_RECORDS_PER_REQUEST), { partition: p, producerId: `input-${topic}`, sequence: i });
        }
      };
      await Promise.all(Array.from({ length: PRELOAD_IN_FLIGHT_PER_PARTITION }, worker));
    }),
  );
}

/** CPU time (user + system) of a process, in µs, from /proc (Linux); undefined elsewhere. */
const procCpuUs = (pid: number | undefined): number | undefined => (pid === undefined ? undefined : statCpuUs(`/proc/${pid}/stat`));

/**
 * CPU µs per event of this process (the app) and of the hub over a timed
 * part: what each costs whatever else shares the machine, so runs on a
 * loaded machine compare.
 */
interface CpuSplit {
  /** This process's CPU µs per event (the app, or the preload's producer). */
  appUs: number;
  hubUs: number;
  text: string;
}

function cpuMeter(hub: Hub): (events: number) => CpuSplit {
  const app0 = process.cpuUsage();
  const hub0 = procCpuUs(hub.proc.pid);
  const hubMain0 = hubMainThreadCpuUs(hub);
  const t0 = performance.now();
  return (events) => {
    const app = process.cpuUsage(app0);
    const hub1 = procCpuUs(hub.proc.pid);
    const hubMain1 = hubMainThreadCpuUs(hub);
    const wallUs = (performance.now() - t0) * 1000;
    const appUs = (app.user + app.system) / events;
    const hubUs = hub0 !== undefined && hub1 !== undefined ? (hub1 - hub0) / events : NaN;
    // Busy shares of the wall time: how much of the run each side waited (on a loaded machine a thread that is runnable but not running counts as busy here).
    const hubShare = hubMain0 !== undefined && hubMain1 !== undefined ? (hubMain1 - hubMain0) / wallUs : NaN;
    const hubProcShare = hub0 !== undefined && hub1 !== undefined ? (hub1 - hub0) / wallUs : NaN;
    const text = `CPU per input event: app ${appUs.toFixed(1)} µs, hub ${hubUs.toFixed(1)} µs; hub's main thread busy ${pct(hubShare)} of the run (whole hub process ${pct(hubProcShare)} of one CPU)`;
    return { appUs, hubUs, text };
  };
}

/** The hub's main (event-loop) thread's CPU µs: its thread id is the process id. */
const hubMainThreadCpuUs = (hub: Hub): number | undefined => (hub.proc.pid === undefined ? undefined : statCpuUs(`/proc/${hub.proc.pid}/task/${hub.proc.pid}/stat`));

const pct = (share: number): string => (Number.isFinite(share) ? `${Math.round(share * 100)}%` : 'n/a');

/** CPUs the bench's processes share (the goals are for this 2-core machine). */
const MACHINE_CPUS = 2;

/**
 * The machine's bound for a row if its input were produced live beside it:
 * every CPU busy with the producer, the hub and the app, at the CPU each
 * spent per event in this run. Ignores waiting (fsync, round trips), so it is
 * an upper bound.
 */
function chainBound(producer: CpuSplit, app: CpuSplit): string {
  const us = producer.appUs + producer.hubUs + app.appUs + app.hubUs;
  const bound = Math.round((MACHINE_CPUS * 1e6) / us);
  return `whole chain on ${MACHINE_CPUS} CPUs (producer ${producer.appUs.toFixed(1)} + hub ${producer.hubUs.toFixed(1)} + app ${app.appUs.toFixed(1)} + hub ${app.hubUs.toFixed(1)} = ${us.toFixed(1)} µs per event): at most ${bound.toLocaleString('en')}/s`;
}

async function timeApp(
  client: Client,
  events: number,
  build: (app: StreamApp) => void,
  id: string,
  hub: Hub,
): Promise<{ eventsPerSec: number; produced: number; ms: number; cpu: string; split: CpuSplit }> {
  if (WARM_UP) {
    const warm = stream(client, { applicationId: `${id}-warm`, httpUrl: hub.url, staticAssignment: 'all', creditBytes: CREDIT_BYTES });
    build(warm);
    await warm.start();
    await waitFor(() => warm.metrics().processed >= events, 600_000, `${id}-warm processed`);
    await warm.flush();
    await warm.close();
  }
  const app = stream(client, {
    applicationId: id,
    httpUrl: hub.url,
    staticAssignment: 'all',
    creditBytes: CREDIT_BYTES,
    commitIntervalMs: Number(process.env.STREAMS_COMMIT_MS) || undefined,
    minBatchRecords: Number(process.env.STREAMS_MIN_BATCH) || undefined,
    maxPendingRecords: Number(process.env.STREAMS_MAX_PENDING) || undefined,
  });
  build(app);
  await app.start(); // internal topics created, partitions restored: the clock starts with the first fetch
  const prof = await startProfile();
  const hubProf = startHubProfile(hub);
  const cpu = cpuMeter(hub);
  const thread0 = threadCpuUs();
  const elu0 = nodePerformance.eventLoopUtilization();
  const t0 = performance.now();
  // Partitions restored early in start() are read while later ones restore: what they processed before the clock started is not counted.
  const before = app.metrics().processed;
  // Polled every ms: the end of processing is not seen up to 20 ms late (a few % of a run).
  await waitFor(() => app.metrics().processed >= events, 600_000, `${id} processed`, 1);
  const processedMs = performance.now() - t0;
  await app.flush();
  const ms = performance.now() - t0;
  const timed = events - before;
  const split = cpu(timed);
  const own = (threadCpuUs() - thread0) / timed;
  const busy = nodePerformance.eventLoopUtilization(elu0).utilization;
  // Busy but not on a CPU (preempted by the hub, V8's helper threads or the machine's other work) = event loop busy share − thread CPU share.
  const onCpu = (own * timed) / (ms * 1000);
  const m = app.metrics();
  const cpuNote =
    split.text +
    ` (the app's thread's own: ${own.toFixed(1)} µs; its event loop busy ${pct(busy)} of the run, on a CPU ${pct(onCpu)}; all input processed at ${Math.round(processedMs)} ms, the last flush took ${Math.round(ms - processedMs)} ms; processing stopped ${m.outputWaits} times for output acks, ${Math.round(m.outputWaitMs)} ms in all)` +
    (before > 0 ? ` (${before} events processed before the clock started, not counted)` : '');
  await prof?.(id);
  await hubProf?.(id);
  const produced = app.metrics().produced;
  await app.close();
  return { eventsPerSec: Math.round((timed / ms) * 1000), produced, ms: Math.round(ms), cpu: cpuNote, split };
}

/** Input bytes the hub may send ahead per subscription, in every instance. */
const CREDIT_BYTES = 8 * 1024 * 1024;
/** App instances per row: STREAMS_INSTANCES=1,2 (default). 1 runs on this thread; more run one worker thread each. */
/**
 * Every timed run follows an untimed pass of the same pipeline over the same
 * input under another applicationId, in the same thread(s): a worker thread
 * starts with a cold JIT, and the rows measure a running app, not its first
 * seconds. STREAMS_WARM_UP=0 turns it off.
 */
const WARM_UP = process.env.STREAMS_WARM_UP !== '0';
const INSTANCES = (process.env.STREAMS_INSTANCES ?? '1,2').split(',').map(Number);

/**
 * Young generation of an instance thread. A worker's default is smaller than
 * the main thread's: with it, the V8 helper threads (scavenges) spent ~1.5×
 * the CPU per event (measured per thread in /proc/self/task).
 */
const WORKER_YOUNG_GENERATION_MB = 64;

/**
 * The worker threads' entry: tsx's loader is registered in the thread first
 * (a worker does not inherit `--import tsx` for its entry on Node 20).
 */
const INSTANCE_ENTRY = `import('tsx/esm/api').then((m) => { m.register(); return import(${JSON.stringify(new URL('./streams-instance.ts', import.meta.url).href)}); })`;

/**
 * `k` instances of one application, each in a worker thread with its own
 * connection and every k-th input partition (static assignment): as k
 * processes of the application would share the input. The clock runs from
 * the first instance's start() returning to the last one's flush; CPU is
 * this process's (all threads) from 'go' on, so it includes each instance's
 * (empty) restore.
 */
async function timeInstances(
  client: Client,
  k: number,
  pipeline: PipelineName,
  id: string,
  hub: Hub,
  input: InputEvent[],
): Promise<{ eventsPerSec: number; produced: number; ms: number; cpu: string; split: CpuSplit }> {
  // The internal topics are created here first: instances creating them at the same moment race in the hub (one gets TOPIC_EXISTS over the socket).
  for (const setupId of WARM_UP ? [id, `${id}-warm`] : [id]) {
    const setup = stream(client, { applicationId: setupId, httpUrl: hub.url, staticAssignment: { in: [] } });
    PIPELINES[pipeline](setup);
    await setup.start();
    await setup.close();
  }
  const perPartition = new Array<number>(PARTITIONS).fill(0);
  for (const e of input) perPartition[partitionForKey(e.key, PARTITIONS)]++;
  const workers = Array.from({ length: k }, (_, i) => {
    const partitions = perPartition.map((_, p) => p).filter((p) => p % k === i);
    const data: InstanceData = {
      wsUrl: hub.wsUrl,
      httpUrl: hub.url,
      applicationId: id,
      pipeline,
      partitions,
      events: partitions.reduce((a, p) => a + perPartition[p], 0),
      creditBytes: CREDIT_BYTES,
      warmUp: WARM_UP ? `${id}-warm` : undefined,
    };
    return new Worker(INSTANCE_ENTRY, { eval: true, workerData: data, resourceLimits: { maxYoungGenerationSizeMb: WORKER_YOUNG_GENERATION_MB } });
  });
  const next = (w: Worker) =>
    new Promise<unknown>((resolve, reject) => {
      const onError = (e: Error) => reject(e);
      w.once('error', onError);
      w.once('message', (m: unknown) => {
        w.off('error', onError);
        resolve(m);
      });
    });
  try {
    await Promise.all(workers.map(next)); // 'ready': loaded, connected, topology built
    const hubProf = startHubProfile(hub);
    const cpu = cpuMeter(hub);
    const dones = workers.map(next);
    for (const w of workers) w.postMessage('go');
    const results = (await Promise.all(dones)) as InstanceDone[];
    const t0 = Math.min(...results.map((r) => r.t0));
    const ms = Math.max(...results.map((r) => r.t1)) - t0;
    const timed = results.reduce((a, r) => a + r.timed, 0);
    const split = cpu(timed);
    await hubProf?.(id);
    const before = input.length - timed;
    const threads = results.map((r) => (r.threadCpuUs / timed).toFixed(1)).join(' + ');
    const busy = results.map((r) => `${pct(r.busy)} (on a CPU ${pct(r.threadCpuUs / ((r.t1 - r.t0) * 1000))})`).join(', ');
    const cpuNote =
      split.text +
      ` (all threads of the app process; the instance threads' own: ${threads} µs; their event loops busy ${busy} of their runs)` +
      (before > 0 ? ` (${before} events processed before an instance's clock started, not counted)` : '');
    return { eventsPerSec: Math.round((timed / ms) * 1000), produced: results.reduce((a, r) => a + r.produced, 0), ms: Math.round(ms), cpu: cpuNote, split };
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
}

/**
 * STREAMS_CPU_PROF=DIR: a V8 CPU profile of the app process over the timed part only
 * (DIR/<app>.cpuprofile; read it with bench/cpuprofile-top.ts).
 */
async function startProfile(): Promise<((id: string) => Promise<void>) | undefined> {
  const dir = process.env.STREAMS_CPU_PROF;
  if (!dir) return undefined;
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.start');
  return async (id) => {
    const { profile } = await session.post('Profiler.stop');
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, `${id}.cpuprofile`), JSON.stringify(profile));
    session.disconnect();
  };
}

/**
 * STREAMS_HUB_CPU_PROF=DIR: the hub loads bench/lib/hub-window-profile.cjs,
 * which profiles its main thread between two SIGUSR2; this sends the first
 * and returns what sends the second and names the profile DIR/hub-<id>.cpuprofile.
 */
const HUB_PROF_DIR = process.env.STREAMS_HUB_CPU_PROF;
let hubProfiles = 0;

function hubProfileEnv(): Record<string, string> {
  if (!HUB_PROF_DIR) return {};
  fs.mkdirSync(HUB_PROF_DIR, { recursive: true });
  const preload = fileURLToPath(new URL('./lib/hub-window-profile.cjs', import.meta.url));
  return { NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --require ${preload}`.trim() };
}

function startHubProfile(hub: Hub): ((id: string) => Promise<void>) | undefined {
  const dir = HUB_PROF_DIR;
  const pid = hub.proc.pid;
  if (!dir || pid === undefined) return undefined;
  process.kill(pid, 'SIGUSR2');
  return async (id) => {
    const written = path.join(dir, `hub-${hubProfiles++}.cpuprofile`);
    process.kill(pid, 'SIGUSR2');
    await waitFor(() => fs.existsSync(written), 30_000, `hub profile ${written}`);
    fs.renameSync(written, path.join(dir, `hub-${id}.cpuprofile`));
  };
}

/** --only task: the task's processing alone, no hub (bench/streams-task.ts). */
async function taskRows(n: number): Promise<StreamsBenchRow[]> {
  const input = benchInput(n);
  const rows: StreamsBenchRow[] = [];
  for (const [system, build] of [
    ['task alone: stateless filter+map+to', PIPELINES.stateless],
    ["task alone: stateless filter+map+to, values: 'view'", PIPELINES['stateless-view']],
    ['task alone: windowed keyed count', PIPELINES.windowed],
    ["task alone: windowed keyed count, emit 'final'", PIPELINES['windowed-final']],
  ] as const) {
    const { warmUs, coldUs, threadUs } = await taskCpuPerEvent(input, build);
    rows.push({
      scenario: 'streams',
      system,
      eventsPerSec: Math.round(1e6 / warmUs),
      notes: `${n} events, no hub: ${warmUs.toFixed(2)} µs of CPU per event, the task's thread ${threadUs.toFixed(2)} µs (medians of warm rounds; first round ${coldUs.toFixed(2)} µs)`,
    });
  }
  return rows;
}

export async function runStreamsBench(opts: { quick: boolean; only?: string }): Promise<StreamsBenchRow[]> {
  const n = Number(process.env.STREAMS_BENCH_EVENTS) || (opts.quick ? 50_000 : 200_000);
  if (opts.only === 'task') return taskRows(n);
  const rows: StreamsBenchRow[] = [];
  const hub = await startHub({ args: ['--topic-fsync', 'always'], env: hubProfileEnv() });
  const client = createClient({ url: hub.wsUrl, outbox: 'memory', name: 'streams-bench', maxInFlightBatches: 8 });
  try {
    await createTopic(hub.url, 'in', PARTITIONS);
    const input = benchInput(n);
    const tp = performance.now();
    const preloadCpu = cpuMeter(hub);
    await preload(client, 'in', input);
    const produceMs = performance.now() - tp;
    const preloadCpuNote = preloadCpu(n);
    const note = `${n} events of ~100 B in ${PARTITIONS} partitions, fsync always, static assignment, hub and app on the same 2 CPUs`;

    // The output path's ceiling: the same client's produce() alone, as the app's lanes send (4 requests of 10,000 in flight per partition).
    rows.push({
      scenario: 'streams',
      system: 'client.produce alone (input preload, batch form)',
      eventsPerSec: Math.round((n / produceMs) * 1000),
      notes: `${note}; the path every output, changelog and repartition record takes; ${preloadCpuNote.text}`,
    });
    const rowDefs: { pipeline: PipelineName; system: string; outputs: string; goal?: string }[] = [
      { pipeline: 'stateless', system: 'stateless filter+map+to', outputs: 'outputs', goal: 'goal ≥ 500,000/s' },
      { pipeline: 'stateless-view', system: "stateless filter+map+to, values: 'view'", outputs: 'outputs', goal: 'goal ≥ 500,000/s' },
      { pipeline: 'consume', system: 'consume + filter, no output', outputs: 'outputs' },
      { pipeline: 'windowed', system: 'windowed keyed count', outputs: 'outputs (every update)', goal: 'goal ≥ 200,000/s' },
      { pipeline: 'windowed-final', system: "windowed keyed count, emit 'final'", outputs: 'outputs (one per closed window)' },
    ];
    const selected = rowDefs.filter((d) =>
      opts.only
        ? d.pipeline === opts.only || (opts.only === 'windowed' && d.pipeline === 'windowed-final') || (opts.only === 'stateless' && d.pipeline === 'stateless-view')
        : d.pipeline !== 'consume',
    );
    for (const d of selected) {
      await createTopic(
        hub.url,
        { stateless: 'stateless-out', 'stateless-view': 'stateless-view-out', consume: 'nowhere', windowed: 'windowed-out', 'windowed-final': 'windowed-final-out' }[d.pipeline],
        PARTITIONS,
      );
      for (const [j, k] of INSTANCES.entries()) {
        const id = `bench-${d.pipeline}${j > 0 ? `-${j}x${k}` : ''}`;
        const r = k === 1 ? await timeApp(client, n, PIPELINES[d.pipeline], id, hub) : await timeInstances(client, k, d.pipeline, id, hub, input);
        const how = k === 1 ? 'one instance on the main thread' : `${k} instances, a worker thread and connection each, ${PARTITIONS / k} partitions each`;
        rows.push({
          scenario: 'streams',
          system: k === 1 ? d.system : `${d.system}, ${k} instances`,
          eventsPerSec: r.eventsPerSec,
          notes: [`${note}, ${how}`, `${r.produced} ${d.outputs}`, `${r.ms} ms`, r.cpu, chainBound(preloadCpuNote, r.split), d.goal].filter(Boolean).join('; '),
        });
      }
    }
  } finally {
    await client.close();
    await hub.stop();
    hub.cleanup();
  }
  return rows;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const i = process.argv.indexOf('--only');
  const rows = await runStreamsBench({ quick: process.argv.includes('--quick'), only: i > 0 ? process.argv[i + 1] : undefined });
  for (const r of rows) console.log(`${r.system}: ${r.eventsPerSec.toLocaleString('en')} events/s (${r.notes})`);
}
