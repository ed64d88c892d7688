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
 *   STREAMS_BENCH_EVENTS=N sets the input size.
 *
 * Rows:
 * - stateless: filter (keeps ~half) + mapValues + to. Goal ≥ 500,000 events/s.
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
import { startHub, type Hub } from '../harness/hub.ts';
import { partitionForKey } from '../protocol/index.ts';
import { keyedEvents, type InputEvent } from '../harness/stream-input.ts';
import { createTopic } from '../harness/topic-reader.ts';
import { waitFor } from '../harness/wait.ts';
import { createClient, type Client } from '../web-client/node.ts';
import { stream, type StreamApp } from '../streams/index.ts';
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

/** Clock ticks per second of /proc/<pid>/stat's utime and stime (USER_HZ, 100 on Linux). */
const USER_HZ = 100;

/** CPU time (user + system) of a process, in µs, from /proc (Linux); undefined elsewhere. */
function procCpuUs(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(f[11]) + Number(f[12])) / USER_HZ) * 1e6; // fields 14 and 15 of stat: utime, stime
  } catch {
    return undefined;
  }
}

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
  return (events) => {
    const app = process.cpuUsage(app0);
    const hub1 = procCpuUs(hub.proc.pid);
    const appUs = (app.user + app.system) / events;
    const hubUs = hub0 !== undefined && hub1 !== undefined ? (hub1 - hub0) / events : NaN;
    return { appUs, hubUs, text: `CPU per input event: app ${appUs.toFixed(1)} µs, hub ${hubUs.toFixed(1)} µs` };
  };
}

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
  const app = stream(client, {
    applicationId: id,
    httpUrl: hub.url,
    staticAssignment: 'all',
    creditBytes: 8 * 1024 * 1024,
    commitIntervalMs: Number(process.env.STREAMS_COMMIT_MS) || undefined,
    minBatchRecords: Number(process.env.STREAMS_MIN_BATCH) || undefined,
  });
  build(app);
  await app.start(); // internal topics created, partitions restored: the clock starts with the first fetch
  const prof = await startProfile();
  const cpu = cpuMeter(hub);
  const t0 = performance.now();
  // Partitions restored early in start() are read while later ones restore: what they processed before the clock started is not counted.
  const before = app.metrics().processed;
  await waitFor(() => app.metrics().processed >= events, 600_000, `${id} processed`);
  await app.flush();
  const ms = performance.now() - t0;
  const timed = events - before;
  const split = cpu(timed);
  const cpuNote = split.text + (before > 0 ? ` (${before} events processed before the clock started, not counted)` : '');
  await prof?.(id);
  const produced = app.metrics().produced;
  await app.close();
  return { eventsPerSec: Math.round((timed / ms) * 1000), produced, ms: Math.round(ms), cpu: cpuNote, split };
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

/** ~100-byte JSON values, keyed (1,000 keys), one event per ms of event time. */
function benchInput(n: number): InputEvent[] {
  return keyedEvents(n, 1000, 1_700_000_000_000, 1).map((e, i) => ({ ...e, value: { i, kind: i % 2 ? 'temp' : 'hum', room: `room-${i % 1000}`, c: 20 + (i % 7), pad: 'x'.repeat(32) } }));
}

const stateless = (app: StreamApp) =>
  app
    .from<{ kind: string; c: number; room: string }>('in')
    .filter((r) => r.value.kind === 'temp')
    .mapValues((r) => ({ room: r.value.room, f: r.value.c * 1.8 + 32 }))
    .to('stateless-out');
const windowed = (emit: 'update' | 'final', out: string) => (app: StreamApp) => app.from('in').groupByKey().window({ tumblingMs: 10_000, graceMs: 1_000, emit }).count({ name: 'counts' }).to(out);

/** --only task: the task's processing alone, no hub (bench/streams-task.ts). */
async function taskRows(n: number): Promise<StreamsBenchRow[]> {
  const input = benchInput(n);
  const rows: StreamsBenchRow[] = [];
  for (const [system, build] of [
    ['task alone: stateless filter+map+to', stateless],
    ['task alone: windowed keyed count', windowed('update', 'windowed-out')],
    ["task alone: windowed keyed count, emit 'final'", windowed('final', 'windowed-final-out')],
  ] as const) {
    const { warmUs, coldUs } = await taskCpuPerEvent(input, build);
    rows.push({
      scenario: 'streams',
      system,
      eventsPerSec: Math.round(1e6 / warmUs),
      notes: `${n} events, no hub: ${warmUs.toFixed(2)} µs of CPU per event (median of warm rounds; first round ${coldUs.toFixed(2)} µs)`,
    });
  }
  return rows;
}

export async function runStreamsBench(opts: { quick: boolean; only?: string }): Promise<StreamsBenchRow[]> {
  const n = Number(process.env.STREAMS_BENCH_EVENTS) || (opts.quick ? 50_000 : 200_000);
  if (opts.only === 'task') return taskRows(n);
  const rows: StreamsBenchRow[] = [];
  const hub = await startHub({ args: ['--topic-fsync', 'always'] });
  const client = createClient({ url: hub.wsUrl, outbox: 'memory', name: 'streams-bench', maxInFlightBatches: 8 });
  try {
    await createTopic(hub.url, 'in', PARTITIONS);
    const input = benchInput(n);
    const tp = performance.now();
    const preloadCpu = cpuMeter(hub);
    await preload(client, 'in', input);
    const produceMs = performance.now() - tp;
    const preloadCpuNote = preloadCpu(n);
    const note = `${n} events of ~100 B in ${PARTITIONS} partitions, fsync always, one instance (static assignment), hub and app on the same 2 CPUs`;

    // The output path's ceiling: the same client's produce() alone, as the app's lanes send (4 requests of 10,000 in flight per partition).
    rows.push({
      scenario: 'streams',
      system: 'client.produce alone (input preload, batch form)',
      eventsPerSec: Math.round((n / produceMs) * 1000),
      notes: `${note}; the path every output, changelog and repartition record takes; ${preloadCpuNote.text}`,
    });
    if (!opts.only || opts.only === 'stateless') {
      await createTopic(hub.url, 'stateless-out', PARTITIONS);
      const r = await timeApp(client, n, stateless, 'bench-stateless', hub);
      rows.push({
        scenario: 'streams',
        system: 'stateless filter+map+to',
        eventsPerSec: r.eventsPerSec,
        notes: `${note}; ${r.produced} outputs; ${r.ms} ms; ${r.cpu}; ${chainBound(preloadCpuNote, r.split)}; goal ≥ 500,000/s`,
      });
    }
    if (opts.only === 'consume') {
      await createTopic(hub.url, 'nowhere', 1);
      const r = await timeApp(
        client,
        n,
        (app) =>
          app
            .from<{ kind: string }>('in')
            .filter((r) => r.value.kind === 'none')
            .to('nowhere'),
        'bench-consume',
        hub,
      );
      rows.push({ scenario: 'streams', system: 'consume + filter, no output', eventsPerSec: r.eventsPerSec, notes: `${note}; ${r.ms} ms; ${r.cpu}` });
    }
    if (!opts.only || opts.only === 'windowed') {
      await createTopic(hub.url, 'windowed-out', PARTITIONS);
      const r = await timeApp(client, n, windowed('update', 'windowed-out'), 'bench-windowed', hub);
      rows.push({
        scenario: 'streams',
        system: 'windowed keyed count',
        eventsPerSec: r.eventsPerSec,
        notes: `${note}; ${r.produced} outputs (every update); ${r.ms} ms; ${r.cpu}; ${chainBound(preloadCpuNote, r.split)}; goal ≥ 200,000/s`,
      });
      await createTopic(hub.url, 'windowed-final-out', PARTITIONS);
      const f = await timeApp(client, n, windowed('final', 'windowed-final-out'), 'bench-windowed-final', hub);
      rows.push({
        scenario: 'streams',
        system: "windowed keyed count, emit 'final'",
        eventsPerSec: f.eventsPerSec,
        notes: `${note}; ${f.produced} outputs (one per closed window); ${f.ms} ms; ${f.cpu}; ${chainBound(preloadCpuNote, f.split)}`,
      });
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
