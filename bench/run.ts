/**
 * `npm run bench [-- --quick] [--json FILE] [--only produce,replay] [--systems hub,redis-aof-always]`
 *
 * Starts every system itself on loopback (random ports, temp dirs), runs each
 * scenario against each system that can do it with the load in a process of
 * its own, stops everything it started (also on error and SIGINT), prints a
 * table with the hub's ratio to each peer and limit, and with --json writes
 * `{"results":[...],"skipped":[...],"ratios":[...],"run":{...}}`.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import type { Job, LoadResult } from './load/job.ts';
import { RESULT_PREFIX } from './load/job.ts';
import { BENCH, installCleanupHandlers, spawnManaged, stopAll } from './lib/procs.ts';
import { formatTable, writeJson, type ResultRow, type RunInfo, type Skipped } from './lib/report.ts';
import { hubAvailable, MODULE_SCENARIOS, SYSTEMS, systemByName, type ModuleScenario, type ScenarioName, type SystemDef } from './lib/systems.ts';
import { PROFILES, WINDOW_BY_CLIENT, type Profile } from './lib/profiles.ts';

const ALL_SCENARIOS: ScenarioName[] = [
  'protocol',
  'storage',
  'produce',
  'replay',
  'browser-replay',
  'latency',
  'fanout',
  'connections',
  'outbox',
  'edge',
  'groups',
  'streams',
  'connectors',
  'jetstream',
];
const LOAD_MAIN = path.join(BENCH, 'load/main.ts');
/** The produce frame's batch form is the hub's own wire format: the systems that take the hub's frames. */
const BATCH_FORM_SYSTEMS = new Set(['hub', 'uws-echo', 'durable-append']);
const BATCH_FORM_ONLY = "the batch form is the hub's frame format; this system's own batching is in produce-1p/4p";
const NODE_TSX = ['--import', 'tsx'];
/** Slack on top of a job's own bound before the harness stops its load process. */
const LOAD_SLACK_MS = 60_000;

interface Options {
  quick: boolean;
  json?: string;
  scenarios: ScenarioName[];
  systems: SystemDef[];
  /** Auth on for the hub in every scenario (connections has it on anyway). */
  auth: boolean;
  /** Auth off for the hub's connections scenario too. */
  noAuth: boolean;
  cpuProfDir?: string;
  /** The connections scenario's count (default: the profile's) and connections per 127.0.0.x source address. */
  connections?: number;
  connectionsPerAddress?: number;
}

function parseOptions(): Options {
  const { values } = parseArgs({
    options: {
      quick: { type: 'boolean', default: false },
      json: { type: 'string' },
      only: { type: 'string' },
      systems: { type: 'string' },
      auth: { type: 'boolean', default: false },
      'no-auth': { type: 'boolean', default: false },
      'cpu-prof': { type: 'string' },
      connections: { type: 'string' },
      'connections-per-address': { type: 'string' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    console.log(
      `usage: npm run bench -- [--quick] [--json FILE] [--only ${ALL_SCENARIOS.join(',')}] [--systems ${SYSTEMS.map((s) => s.name).join(',')}] [--auth | --no-auth] [--cpu-prof DIR] [--connections N] [--connections-per-address N]`,
    );
    process.exit(0);
  }
  const scenarios = values.only ? (values.only.split(',').map((s) => s.trim()) as ScenarioName[]) : ALL_SCENARIOS;
  for (const s of scenarios) if (!ALL_SCENARIOS.includes(s)) throw new Error(`unknown scenario ${s}; known: ${ALL_SCENARIOS.join(', ')}`);
  const systems = values.systems ? values.systems.split(',').map((s) => systemByName(s.trim())) : SYSTEMS;
  const cpuProfDir = values['cpu-prof'] ? path.resolve(values['cpu-prof']) : undefined;
  if (cpuProfDir) fs.mkdirSync(cpuProfDir, { recursive: true });
  const positive = (name: string, v: string | undefined): number | undefined => {
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1) throw new Error(`--${name} wants a positive integer, got ${v}`);
    return n;
  };
  return {
    quick: values.quick,
    json: values.json,
    scenarios,
    systems,
    auth: values.auth,
    noAuth: values['no-auth'],
    cpuProfDir,
    connections: positive('connections', values.connections),
    connectionsPerAddress: positive('connections-per-address', values['connections-per-address']),
  };
}

/** Runs one load process to completion and returns its answer; with `cpuProfDir`, it writes a V8 CPU profile under it. */
async function runProcess<T>(name: string, script: string, args: string[], boundMs: number, cpuProfDir?: string): Promise<T> {
  const prof = cpuProfDir ? ['--cpu-prof', '--cpu-prof-dir', path.join(cpuProfDir, `${name}-${Date.now()}`)] : [];
  const proc = spawnManaged(name, process.execPath, [...prof, ...NODE_TSX, script, ...args], { raiseFdLimit: true });
  const timer = setTimeout(() => void proc.stop(), boundMs + LOAD_SLACK_MS);
  const code = await proc.exited;
  clearTimeout(timer);
  await proc.stop();
  const line = proc
    .output()
    .split('\n')
    .find((l) => l.startsWith(RESULT_PREFIX));
  if (code !== 0 || !line) throw new Error(`${name} exited with ${code}: ${proc.output().trim().split('\n').slice(-6).join(' | ')}`);
  return JSON.parse(line.slice(RESULT_PREFIX.length)) as T;
}

const runLoad = (name: string, job: Job, boundMs: number, cpuProfDir?: string): Promise<LoadResult> => runProcess<LoadResult>(name, LOAD_MAIN, [JSON.stringify(job)], boundMs, cpuProfDir);

function toRow(scenario: string, system: string, r: LoadResult, extraNotes: string[] = []): ResultRow {
  const seconds = r.elapsedMs / 1000;
  const row: ResultRow = { scenario, system, eventsPerSec: seconds > 0 ? Math.round(r.events / seconds) : 0 };
  if (r.bytes > 0) row.mbPerSec = Math.round((r.bytes / seconds / 1e6) * 10) / 10;
  if (r.latency) {
    row.p50Ms = round3(r.latency.p50Ms);
    row.p99Ms = round3(r.latency.p99Ms);
    row.p999Ms = round3(r.latency.p999Ms);
  }
  if (r.rssBytes !== undefined) row.rssBytes = r.rssBytes;
  if (scenario === 'connections' && r.rssBytes !== undefined && r.rssBaseBytes !== undefined && r.events > 0) {
    row.rssPerConnBytes = Math.round((r.rssBytes - r.rssBaseBytes) / r.events);
  }
  const notes = [...extraNotes, ...r.notes, ...(r.errors ? [`${r.errors} errors`] : [])];
  if (notes.length) row.notes = notes.join('; ');
  return row;
}

const round3 = (n: number): number => Math.round(n * 1000) / 1000;

interface Variant {
  scenario: string;
  job: (topic: string) => Omit<Job, 'target'>;
  boundMs: number;
  note: string;
}

function variants(sc: ScenarioName, p: Profile): Variant[] {
  switch (sc) {
    case 'produce':
      return (['records', 'batch'] as const).flatMap((form) =>
        [1, 4].map((producers) => ({
          scenario: `produce${form === 'batch' ? '-batch' : ''}-${producers}p`,
          job: () => ({ scenario: 'produce', params: { ...p.produce, producers, form } }),
          boundMs: p.produce.durationMs + p.produce.warmupMs + 20_000,
          note: `${producers} producer${producers > 1 ? 's' : ''}, ${form === 'batch' ? 'one producer-encoded record batch' : 'batches'} of ${p.produce.batch} × ${p.produce.valueBytes} B`,
        })),
      );
    case 'replay':
      return [{ scenario: 'replay', job: () => ({ scenario: 'replay', params: p.replay }), boundMs: 2 * p.replay.timeoutMs, note: `${p.replay.events} stored events from the start` }];
    case 'latency':
      return [
        {
          scenario: 'latency',
          job: () => ({ scenario: 'latency', params: p.latency }),
          boundMs: p.latency.durationMs + p.latency.warmupMs + 20_000,
          note: `${p.latency.rate} events/s steady, produce→deliver`,
        },
      ];
    case 'fanout':
      return [
        {
          scenario: 'fanout',
          job: () => ({ scenario: 'fanout', params: p.fanout }),
          boundMs: p.fanout.durationMs + p.fanout.warmupMs + 60_000,
          note: `1 producer at ${p.fanout.rate} events/s to ${p.fanout.subscribers} subscribers`,
        },
      ];
    case 'connections':
      return [{ scenario: 'connections', job: () => ({ scenario: 'connections', params: p.connections }), boundMs: p.connections.timeoutMs, note: `${p.connections.count} idle connections` }];
    default:
      return [];
  }
}

/** storage.ts's raw limit rows, as the raw-disk system of produce-1p (the storage scenario runs first, or now). */
const RAW_ROWS: Record<string, string> = { 'raw fs.write': 'raw-disk', 'raw fs.write+fdatasync': 'raw-disk-fdatasync' };

async function runRawDisk(quick: boolean, rows: ResultRow[], skipped: Skipped[]): Promise<void> {
  if (!rows.some((r) => r.scenario === 'storage')) await runModuleScenario('storage', quick, rows, skipped);
  const raw = rows.filter((r) => r.scenario === 'storage' && RAW_ROWS[r.system]);
  if (raw.length === 0) {
    skipped.push({ scenario: 'produce-1p', system: 'raw-disk', reason: 'no raw rows from bench/storage.ts (missing or failed)' });
    return;
  }
  for (const r of raw) rows.push({ ...r, scenario: 'produce-1p', system: RAW_ROWS[r.system], notes: `from the storage scenario: ${r.notes ?? ''}` });
}

async function runModuleScenario(sc: ModuleScenario, quick: boolean, rows: ResultRow[], skipped: Skipped[]): Promise<void> {
  const file = `${sc}.ts`;
  if (!fs.existsSync(path.join(BENCH, file))) {
    skipped.push({ scenario: sc, system: '*', reason: `bench/${file} does not exist yet` });
    return;
  }
  try {
    const out = await runProcess<Array<Record<string, unknown>>>(sc, path.join(BENCH, 'load/module-scenario.ts'), [sc, ...(quick ? ['--quick'] : [])], 15 * 60_000);
    for (const r of out) rows.push({ ...r, scenario: String(r.scenario ?? sc), system: String(r.system ?? sc), eventsPerSec: Number(r.eventsPerSec ?? 0) });
  } catch (e) {
    skipped.push({ scenario: sc, system: '*', reason: `failed: ${e instanceof Error ? e.message : String(e)}` });
  }
}

async function runSystemScenario(def: SystemDef, v: Variant, opts: Options, rows: ResultRow[], skipped: Skipped[]): Promise<void> {
  const base = v.scenario.split('-')[0] as ScenarioName;
  const topic = `bench-${base}-${Date.now().toString(36)}`;
  // Idle connections are measured as users would hold them: authenticated. Elsewhere auth stays off,
  // as its per-connection produce quotas (10,000 events/s by default) would measure the quota, not the hub.
  const useAuth = def.name === 'hub' && (base === 'connections' ? !opts.noAuth : opts.auth);
  let sys: Awaited<ReturnType<NonNullable<SystemDef['start']>>>;
  try {
    sys = await def.start!({ auth: useAuth, cpuProfDir: opts.cpuProfDir, label: v.scenario });
  } catch (e) {
    skipped.push({ scenario: v.scenario, system: def.name, reason: `did not start: ${e instanceof Error ? e.message : String(e)}`.slice(0, 600) });
    return;
  }
  try {
    await sys.createTopic(topic);
    const job = { ...v.job(topic), target: { ...sys.target, topic } } as Job;
    if (job.scenario === 'produce') job.params = { ...job.params, window: WINDOW_BY_CLIENT[sys.target.kind] };
    const loadBefore = os.loadavg()[0];
    const r = await runLoad(`load-${def.name}-${v.scenario}`, job, v.boundMs, opts.cpuProfDir);
    const extra = [v.note];
    const busy = Math.max(loadBefore, os.loadavg()[0]);
    // Other work on the machine shows in every figure: note it (the load and the server themselves add about 2).
    if (busy > os.availableParallelism() + 1) extra.push(`machine busy: load average ${busy.toFixed(1)} on ${os.availableParallelism()} CPUs`);
    if (job.scenario === 'produce') extra.push(`${job.params.window} batch${job.params.window > 1 ? 'es' : ''} in flight per producer`);
    if (def.name === 'hub') extra.push(useAuth ? 'auth on (HS256 JWT, a subject per connection)' : 'auth off');
    rows.push(toRow(v.scenario, def.name, r, extra));
  } catch (e) {
    skipped.push({ scenario: v.scenario, system: def.name, reason: `failed: ${e instanceof Error ? e.message : String(e)}`.slice(0, 600) });
  } finally {
    await sys.stop();
  }
  if (def.name === 'hub') addStageNotes(rows, v.scenario);
}

/**
 * With TRIBUTARY_DEBUG_STAGES=FILE the hub writes where produced records
 * spent their time (server/broker/stage-timing.ts) when it stops: put that
 * next to the row it belongs to, and clear the file for the next hub.
 */
function addStageNotes(rows: ResultRow[], scenario: string): void {
  const file = process.env.TRIBUTARY_DEBUG_STAGES;
  if (!file || !fs.existsSync(file)) return;
  const stages = JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, { count: number; p50Ms: number; p99Ms: number; p999Ms: number; maxMs: number }>;
  fs.rmSync(file, { force: true });
  const row = [...rows].reverse().find((r) => r.scenario === scenario && r.system === 'hub');
  if (!row) return;
  const text = Object.entries(stages)
    .map(([name, st]) => `${name} (${st.count}) p50 ${st.p50Ms} / p99 ${st.p99Ms} / p99.9 ${st.p999Ms} / max ${st.maxMs} ms`)
    .join(', ');
  row.notes = [row.notes, `hub stages: ${text}`].filter(Boolean).join('; ');
}

function machineInfo(quick: boolean, loadAvgAtStart: number[]): RunInfo {
  return {
    date: new Date().toISOString(),
    quick,
    loadAvg: { atStart: loadAvgAtStart, atEnd: os.loadavg() },
    machine: {
      nproc: os.availableParallelism(),
      cpu: os.cpus()[0]?.model ?? 'unknown',
      memTotalBytes: os.totalmem(),
      node: process.version,
      kernel: os.release(),
    },
  };
}

async function main(): Promise<void> {
  installCleanupHandlers();
  const opts = parseOptions();
  const base = PROFILES[opts.quick ? 'quick' : 'full'];
  const count = opts.connections ?? base.connections.count;
  const profile = {
    ...base,
    connections: {
      ...base.connections,
      count,
      // Opening takes longer than linearly past the first source address: give a large count the time.
      timeoutMs: Math.max(base.connections.timeoutMs, count * 20),
      ...(opts.connectionsPerAddress ? { perSourceAddress: opts.connectionsPerAddress } : {}),
    },
  };
  const rows: ResultRow[] = [];
  const skipped: Skipped[] = [];
  const t0 = Date.now();
  const loadAvgAtStart = os.loadavg();
  const log = (s: string): void => void process.stderr.write(`[bench ${((Date.now() - t0) / 1000).toFixed(0).padStart(4)} s] ${s}\n`);
  for (const sc of opts.scenarios) {
    if ((MODULE_SCENARIOS as readonly string[]).includes(sc)) {
      log(`${sc}`);
      await runModuleScenario(sc as ModuleScenario, opts.quick, rows, skipped);
      continue;
    }
    for (const v of variants(sc, profile)) {
      for (const def of opts.systems) {
        const why = v.scenario.startsWith('produce-batch') && !BATCH_FORM_SYSTEMS.has(def.name) ? BATCH_FORM_ONLY : def.cannot[sc];
        if (why) {
          skipped.push({ scenario: v.scenario, system: def.name, reason: why });
          continue;
        }
        if (def.name === 'raw-disk') {
          if (v.scenario === 'produce-1p') {
            log(`${v.scenario} × raw-disk`);
            await runRawDisk(opts.quick, rows, skipped);
          } else skipped.push({ scenario: v.scenario, system: def.name, reason: 'one writer: its figures are in produce-1p' });
          continue;
        }
        const missing = def.missing?.();
        if (missing) {
          skipped.push({ scenario: v.scenario, system: def.name, reason: missing });
          continue;
        }
        if (def.name === 'hub' && !hubAvailable()) {
          skipped.push({ scenario: v.scenario, system: def.name, reason: 'the hub (server/cli.ts) has not landed yet' });
          continue;
        }
        log(`${v.scenario} × ${def.name}`);
        await runSystemScenario(def, v, opts, rows, skipped);
      }
    }
  }
  await stopAll();
  console.log(formatTable(rows, skipped));
  log(`done in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  if (opts.json) {
    writeJson(opts.json, rows, skipped, machineInfo(opts.quick, loadAvgAtStart));
    log(`wrote ${opts.json}`);
  }
}

main().catch(async (e: unknown) => {
  process.stderr.write(`bench failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  await stopAll();
  process.exit(1);
});
