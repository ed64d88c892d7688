/**
 * Replay in Chromium: a dashboard reading history through the web client.
 *
 *   node --import tsx bench/browser-replay.ts [--quick] [--only handler|onBatch]
 *   BROWSER_REPLAY_CPU_PROF=/tmp/prof node --import tsx bench/browser-replay.ts --quick
 *
 * A hub (fsync never: the preload is not what is measured) stores 1,000,000
 * JSON events (quick 200,000) of ~100 bytes with string keys in 4
 * partitions, written by this process in the batch form (1,000 records per
 * batch). A page that loaded the built bundle then runs
 * `client.subscribe(topic, {from: 'earliest'}, handler)` and the clock runs
 * from the subscribe call until the handler has seen every event; the
 * handler reads a field of each value, as a chart would. The `onBatch`
 * form runs the same over a fresh client, and so does the handler with
 * the socket in a worker (`WebSocket: WorkerWebSocket`). Heap: the page's V8 heap (CDP
 * Runtime.getHeapUsage) after a forced GC before the run, its peak sampled
 * every 50 ms during it, and after it before any GC. With
 * BROWSER_REPLAY_CPU_PROF set, each row writes a CDP CPU profile there
 * (`bench/cpuprofile-top.ts` reads it). With BROWSER_REPLAY_CENSUS=1 each
 * row prints the CPU and minor page faults of every thread of the hub, this
 * process and each Chromium process over the timed replay
 * (bench/lib/thread-census.ts). BROWSER_REPLAY_BATCH_RECORDS sets the
 * records per stored batch (1,000; with a smaller
 * BROWSER_REPLAY_HUB_ARGS="--subscription-read-bytes N", smaller frames).
 * With BROWSER_REPLAY_TRACE=DIR each row writes a Chrome trace of its timed
 * replay there (`bench/trace-top.ts` gives each thread's CPU by task;
 * with BROWSER_REPLAY_TRACE_ALL=1 the trace is taken from the browser's
 * session, so every Chromium process is in it, not only the page's);
 * BROWSER_REPLAY_CHROMIUM_ARGS adds switches to Chromium (bare pipe only).
 * Every row gives the hub's CPU per event (/proc), and a last row serves the
 * same events to a reader in this process (`ws`, the web client's window and
 * credit returns, records counted, not decoded): the hub's cost per event
 * for a browser reader against a Node one, in the same run.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { BUNDLE, gotoTestPage, launchChromium, startPageServer } from '../harness/browser.ts';
import { startHub } from '../harness/hub.ts';
import { createTopic } from '../harness/topic-reader.ts';
import { decodeCbor, encodeCbor } from '../protocol/codec.ts';
import { batchPositions, encodeBatch, readRecordCount } from '../protocol/batch.ts';
import { nativeCrc32c } from '../server/storage/native-crc.ts';
import { statCpuUs } from './lib/proc-cpu.ts';
import { launchRawChromium } from './lib/raw-chromium.ts';
import type { RawPage } from './lib/raw-chromium.ts';
import { censusDiff, censusSnapshot, formatCensus } from './lib/thread-census.ts';
import { connectWs } from './load/ws-client.ts';

export interface BrowserReplayRow {
  scenario: 'browser-replay';
  system: string;
  eventsPerSec: number;
  notes?: string;
}

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const PARTITIONS = 4;
/** Records per stored batch (BROWSER_REPLAY_BATCH_RECORDS for experiments: smaller batches, smaller frames with a small read size). */
const RECORDS_PER_BATCH = Number(process.env.BROWSER_REPLAY_BATCH_RECORDS ?? 1_000);
/** Produce frames in flight while preloading. */
const PRELOAD_WINDOW = 8;
const HEAP_SAMPLE_MS = 50;
const MiB = 1024 * 1024;
const SYSTEM_NAMES = { handler: '(record handler)', onBatch: '(onBatch)', worker: '(record handler, socket in a worker)', node: "(reference reader: the web client's window, no decoding)" } as const;
/** The web client's default window (web-client/consumer.ts), which the Node reference reader uses too. */
const CLIENT_CREDIT_BYTES = 4 * MiB;
const NODE_SPIN_US = Number(process.env.BROWSER_REPLAY_NODE_US ?? 0);

/** Builds the bundle when it is missing or older than the client's or protocol's sources. */
function ensureBundle(): void {
  const newest = Math.max(...['web-client', 'protocol'].flatMap((d) => fs.readdirSync(path.join(ROOT, d)).map((f) => fs.statSync(path.join(ROOT, d, f)).mtimeMs)));
  if (fs.existsSync(BUNDLE) && fs.statSync(BUNDLE).mtimeMs >= newest) return;
  execFileSync(process.execPath, [path.join(ROOT, 'node_modules/vite/bin/vite.js'), 'build', '--config', 'web-client/vite.config.ts'], { cwd: ROOT, stdio: 'ignore' });
}

/** A UI event of ~100 bytes of JSON. */
function eventValue(i: number): Uint8Array {
  const v = { i, t: 1_764_000_000_000 + i, user: `u${i % 1000}`, kind: i % 3 ? 'click' : 'view', x: (i % 997) / 997, pad: 'x'.repeat(24) };
  return Buffer.from(JSON.stringify(v));
}

/** Stores `count` events in `topic` (PARTITIONS partitions, round robin by batch) over one WebSocket in the batch form. */
async function preload(wsUrl: string, topic: string, count: number): Promise<void> {
  let inFlight = 0;
  let failed = '';
  let wake: (() => void) | null = null;
  const conn = await connectWs(
    wsUrl,
    (b) => {
      const f = decodeCbor(b) as { t?: string; message?: string };
      if (f.t === 'error') failed ||= String(f.message);
      inFlight--;
      wake?.();
    },
    { protocols: ['tributary.v1'] },
  );
  await conn.request({ t: 'hello', id: 1, v: 1, client: 'bench-preload' });
  let id = 2;
  const ts = Date.now();
  for (let base = 0; base < count; base += RECORDS_PER_BATCH * PARTITIONS) {
    const batches = [];
    for (let p = 0; p < PARTITIONS; p++) {
      const from = base + p * RECORDS_PER_BATCH;
      const n = Math.min(RECORDS_PER_BATCH, count - from);
      if (n <= 0) break;
      const records = Array.from({ length: n }, (_, k) => ({ key: `user-${(from + k) % 1000}`, value: eventValue(from + k), encoding: 'json' as const, headers: [], timestamp: ts }));
      batches.push({ p, b: encodeBatch({ records }, nativeCrc32c) });
    }
    while (inFlight >= PRELOAD_WINDOW) await new Promise<void>((r) => (wake = r));
    if (failed) throw new Error(`preload refused: ${failed}`);
    inFlight++;
    conn.send(encodeCbor({ t: 'produce', id: id++, topic, batches }));
  }
  while (inFlight > 0) await new Promise<void>((r) => (wake = r));
  conn.close();
  if (failed) throw new Error(`preload refused: ${failed}`);
}

/**
 * `worker`: the record handler with the socket in a worker (web-client/worker-socket.ts). `node`: a
 * reference row with no browser, a reader in this process (`ws`) with the web client's window and credit
 * returns, which counts the records of each frame without decoding them: what the hub spends per event
 * serving it is the figure the browser rows' hub CPU compares with, in the same run.
 */
type Form = 'handler' | 'onBatch' | 'worker' | 'node';

interface PageResult {
  ms: number;
  count: number;
  checksum: number;
}

/** Runs one replay in the page; resolves with its time. Page code: keep it self-contained. */
function replayInPage(page: PageLike, url: string, topic: string, count: number, form: Form, timeoutMs: number, creditBytes?: number): Promise<PageResult> {
  return page.evaluate(
    ({ url, topic, count, form, timeoutMs, creditBytes }) =>
      new Promise<PageResult>((resolve, reject) => {
        const c = window.T.createClient({ url, name: `replay-${form}-${Date.now()}`, outbox: 'memory', WebSocket: form === 'worker' ? window.T.WorkerWebSocket : undefined });
        let seen = 0;
        let checksum = 0;
        let t0 = 0;
        const timer = setTimeout(() => reject(new Error(`replay timed out after ${seen} of ${count} events`)), timeoutMs);
        const finish = () => {
          const ms = performance.now() - t0;
          clearTimeout(timer);
          sub.close();
          void c.close();
          resolve({ ms, count: seen, checksum });
        };
        c.on('error', (e) => reject(e));
        t0 = performance.now();
        const sub =
          form !== 'onBatch'
            ? c.subscribe(topic, { from: 'earliest', creditBytes }, (r) => {
                checksum += (r.value as { i: number }).i;
                if (++seen === count) finish();
              })
            : c.subscribe(topic, {
                from: 'earliest',
                creditBytes,
                onBatch: (records) => {
                  for (const r of records) checksum += (r.value as { i: number }).i;
                  seen += records.length;
                  if (seen === count) finish();
                },
              });
      }),
    { url, topic, count, form, timeoutMs, creditBytes },
  );
}

/** The `node` reference row: subscribes from earliest, credits back a quarter of the window at a time (as the web client does). */
async function replayInNode(wsUrl: string, topic: string, count: number, timeoutMs: number, creditBytes = CLIENT_CREDIT_BYTES): Promise<PageResult> {
  let seen = 0;
  let unreturned = 0;
  let sub = -1;
  let done: () => void = () => undefined;
  const finished = new Promise<void>((r) => (done = r));
  const t0 = performance.now();
  const conn = await connectWs(
    wsUrl,
    (data) => {
      const f = decodeCbor(data) as { t?: string; sub?: number; b?: Uint8Array };
      if (f.t !== 'records' || !f.b) return;
      let n = 0;
      for (const pos of batchPositions(f.b)) n += readRecordCount(f.b, pos);
      seen += n;
      // BROWSER_REPLAY_NODE_US: this reader spins that many µs per event, a reader as slow as a page (an experiment).
      if (NODE_SPIN_US > 0) for (const until = performance.now() + (n * NODE_SPIN_US) / 1000; performance.now() < until;);
      unreturned += f.b.length;
      if (sub >= 0 && unreturned >= creditBytes / 4) {
        conn.send(encodeCbor({ t: 'credit', sub, bytes: unreturned }));
        unreturned = 0;
      }
      if (seen >= count) done();
    },
    { protocols: ['tributary.v1'] },
  );
  await conn.request({ t: 'hello', id: 1, v: 1, client: 'bench-replay-node' });
  const ok = decodeCbor(await conn.request({ t: 'subscribe', id: 2, topic, from: 'earliest', credit: creditBytes })) as { sub?: number };
  sub = ok.sub ?? 2;
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([finished, new Promise((_, reject) => (timer = setTimeout(() => reject(new Error(`node replay timed out after ${seen} of ${count} events`)), timeoutMs)))]);
  clearTimeout(timer);
  const ms = performance.now() - t0;
  conn.close();
  // The reference reader does not decode values: the checksum is the expected one by construction.
  return { ms, count: seen, checksum: (count * (count - 1)) / 2 };
}

type Send = (method: string, params?: object) => Promise<unknown>;

/** The page as the bench drives it: Playwright's Page with its CDPSession, or a bare DevTools pipe (bench/lib/raw-chromium.ts). */
type PageLike = Pick<RawPage, 'evaluate' | 'send' | 'on'>;

/**
 * A CDP channel to the page's dedicated worker (the socket worker), through
 * the page's session (Target.sendMessageToTarget: Playwright's sessions do
 * not reach workers), or null when there is none.
 */
async function workerChannel(cdp: PageLike): Promise<Send | null> {
  let sessionId = '';
  const pending = new Map<number, (m: { result?: unknown; error?: { message: string } }) => void>();
  cdp.on('Target.attachedToTarget', (e) => {
    if ((e.targetInfo as { type: string }).type === 'worker') sessionId = e.sessionId as string;
  });
  cdp.on('Target.receivedMessageFromTarget', (e) => {
    const m = JSON.parse(e.message as string) as { id?: number; result?: unknown; error?: { message: string } };
    if (m.id !== undefined) pending.get(m.id)?.(m);
  });
  await cdp.send('Target.setAutoAttach', { autoAttach: true, waitForDebuggerOnStart: false, flatten: false });
  const deadline = Date.now() + 5_000;
  while (!sessionId && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  if (!sessionId) return null;
  let nextId = 1;
  return (method, params) =>
    new Promise((resolve, reject) => {
      const id = nextId++;
      pending.set(id, (m) => {
        pending.delete(id);
        if (m.error) reject(new Error(m.error.message));
        else resolve(m.result);
      });
      cdp.send('Target.sendMessageToTarget', { sessionId, message: JSON.stringify({ id, method, params }) }).catch(reject);
    });
}

/** CPU time in a profile: every sample but the idle ones (ms). */
function busyMs(profile: { nodes: Array<{ id: number; callFrame: { functionName: string } }>; samples: number[]; timeDeltas: number[] }): number {
  const idle = new Set(profile.nodes.filter((n) => n.callFrame.functionName === '(idle)').map((n) => n.id));
  let us = 0;
  for (let i = 0; i < profile.samples.length; i++) if (!idle.has(profile.samples[i])) us += Math.max(0, profile.timeDeltas[i] ?? 0);
  return us / 1000;
}

async function heapUsed(cdp: PageLike): Promise<number> {
  return ((await cdp.send('Runtime.getHeapUsage')) as { usedSize: number }).usedSize;
}

export async function runBrowserReplayBench(opts: { quick: boolean; only?: Form[] }): Promise<BrowserReplayRow[]> {
  ensureBundle();
  const count = opts.quick ? 200_000 : 1_000_000;
  const timeoutMs = opts.quick ? 120_000 : 300_000;
  const profDir = process.env.BROWSER_REPLAY_CPU_PROF;
  const rows: BrowserReplayRow[] = [];
  // BROWSER_REPLAY_HUB_ARGS (e.g. "--subscription-read-bytes 1048576") and BROWSER_REPLAY_CREDIT (bytes) are for experiments.
  const extraArgs = (process.env.BROWSER_REPLAY_HUB_ARGS ?? '').split(' ').filter(Boolean);
  // BROWSER_REPLAY_HUB_ENV='NAME=value ...' (e.g. a NODE_OPTIONS preload that profiles on a signal) and
  // BROWSER_REPLAY_HUB_SIGNAL (sent to the hub before and after each timed replay) are for experiments.
  const hubEnv = Object.fromEntries(
    (process.env.BROWSER_REPLAY_HUB_ENV ?? '')
      .split(' ')
      .filter(Boolean)
      .map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]),
  );
  const hubSignal = process.env.BROWSER_REPLAY_HUB_SIGNAL as NodeJS.Signals | undefined;
  // BROWSER_REPLAY_PERF_CTL: the control fifo of a `perf record -D -1 --control fifo:FILE`, enabled over each timed replay only.
  const perfCtl = process.env.BROWSER_REPLAY_PERF_CTL;
  const hub = await startHub({ args: ['--topic-fsync', 'never', ...extraArgs], env: hubEnv });
  const pages = await startPageServer();
  // BROWSER_REPLAY_DRIVER=playwright: the page driven by Playwright, which has Chromium report every WebSocket frame to it.
  const playwright = process.env.BROWSER_REPLAY_DRIVER === 'playwright';
  const browser = playwright ? await launchChromium() : null;
  const raw = playwright ? null : launchRawChromium();
  try {
    const topic = 'bench-browser-replay';
    await createTopic(hub.url, topic, PARTITIONS);
    await preload(hub.wsUrl, topic, count);
    const ctx = await browser?.newContext();
    let cdp: PageLike;
    if (ctx) {
      const page = await ctx.newPage();
      await gotoTestPage(page, pages.url);
      // tsx keeps function names with a __name helper that page code does not have (raw-chromium.ts defines it too).
      await page.evaluate('globalThis.__name = (f) => f');
      const session = await ctx.newCDPSession(page);
      cdp = {
        evaluate: (fn, arg) => page.evaluate(fn as never, arg) as never,
        send: (method, params) => session.send(method as never, params as never) as never,
        on: (event, handler) => session.on(event as never, handler as never),
      };
    } else cdp = await raw!.openTestPage(pages.url);
    const page = cdp;
    await cdp.send('HeapProfiler.enable');
    await cdp.send('Performance.enable');
    // The page's main-thread CPU (CDP Performance ThreadTime, s): on a loaded machine steadier than the rate.
    const threadTime = async (): Promise<number> =>
      (await cdp.send<{ metrics: Array<{ name: string; value: number }> }>('Performance.getMetrics')).metrics.find((m) => m.name === 'ThreadTime')?.value ?? NaN;
    // Warm-up: JIT, the socket path, one pass over a fifth of the events, on the page and through the socket worker
    // (which stays for the page's life: the timed run does not pay its start).
    for (const form of ['handler', 'worker'] as const) await replayInPage(page, hub.wsUrl, topic, Math.min(count, 200_000) / 5, form, timeoutMs).catch(() => undefined);
    // With BROWSER_REPLAY_CPU_PROF, the socket worker (started by the warm-up, kept for the page's life) is profiled too.
    const worker = profDir ? await workerChannel(cdp) : null;
    // BROWSER_REPLAY_CREDIT=1048576,4194304: each form once per credit (bytes), in this run, for a same-run comparison.
    // BROWSER_REPLAY_TRACE=DIR: a Chrome trace of each timed replay (tasks with their thread CPU, `tdur`), for scratch analysis.
    const traceDir = process.env.BROWSER_REPLAY_TRACE;
    // BROWSER_REPLAY_TRACE_ALL=1 (bare pipe): traced from the browser's session, so every process is in the trace.
    const tracer: Pick<PageLike, 'send' | 'on'> = process.env.BROWSER_REPLAY_TRACE_ALL && raw ? raw.browser : cdp;
    const traceEvents: unknown[] = [];
    let traceComplete = (): void => undefined;
    if (traceDir) {
      tracer.on('Tracing.dataCollected', (e) => void traceEvents.push(...(e.value as unknown[])));
      tracer.on('Tracing.tracingComplete', () => traceComplete());
    }
    const credits: Array<number | undefined> = process.env.BROWSER_REPLAY_CREDIT ? process.env.BROWSER_REPLAY_CREDIT.split(',').map(Number) : [undefined];
    for (const creditBytes of credits)
      for (const form of opts.only ?? (['handler', 'onBatch', 'worker', 'node'] as const)) {
        await cdp.send('HeapProfiler.collectGarbage');
        const before = await heapUsed(cdp);
        let peak = before;
        let sampling = true;
        const sampler = (async () => {
          while (sampling) {
            peak = Math.max(peak, await heapUsed(cdp).catch(() => 0));
            await new Promise((r) => setTimeout(r, HEAP_SAMPLE_MS));
          }
        })();
        if (profDir) {
          await cdp.send('Profiler.enable');
          await cdp.send('Profiler.setSamplingInterval', { interval: 100 });
          await cdp.send('Profiler.start');
          if (worker && form === 'worker') {
            await worker('Profiler.enable');
            await worker('Profiler.setSamplingInterval', { interval: 100 });
            await worker('Profiler.start');
          }
        }
        let workerNote = '';
        const traceDone = traceDir ? new Promise<void>((resolve) => (traceComplete = resolve)) : null;
        traceEvents.length = 0;
        if (traceDir) {
          await tracer.send('Tracing.start', {
            transferMode: 'ReportEvents',
            traceConfig: { includedCategories: ['toplevel', 'v8', 'blink', 'devtools.timeline', 'disabled-by-default-devtools.timeline', 'mojom', 'ipc'] },
          });
        }
        const cpuBefore = await threadTime();
        const hubStat = `/proc/${hub.proc.pid}/stat`;
        const hubBefore = statCpuUs(hubStat) ?? NaN;
        const hubSysBefore = statCpuUs(hubStat, 'system') ?? NaN;
        const census0 = process.env.BROWSER_REPLAY_CENSUS ? censusSnapshot() : null;
        if (hubSignal) hub.proc.kill(hubSignal);
        if (perfCtl) fs.writeFileSync(perfCtl, 'enable\n');
        const r = form === 'node' ? await replayInNode(hub.wsUrl, topic, count, timeoutMs, creditBytes) : await replayInPage(page, hub.wsUrl, topic, count, form, timeoutMs, creditBytes);
        const hubUs = (statCpuUs(hubStat) ?? NaN) - hubBefore;
        const hubSysUs = (statCpuUs(hubStat, 'system') ?? NaN) - hubSysBefore;
        if (hubSignal) hub.proc.kill(hubSignal);
        if (perfCtl) fs.writeFileSync(perfCtl, 'disable\n');
        if (census0) console.log(`${SYSTEM_NAMES[form]} ${formatCensus(censusDiff(census0, censusSnapshot()), r.count)}`);
        const cpuSeconds = (await threadTime()) - cpuBefore;
        if (traceDir) {
          await tracer.send('Tracing.end');
          await traceDone;
          fs.mkdirSync(traceDir, { recursive: true });
          fs.writeFileSync(path.join(traceDir, `browser-replay-${form}-${Date.now()}.json`), JSON.stringify({ traceEvents }));
        }
        if (profDir) {
          const { profile } = (await cdp.send('Profiler.stop')) as { profile: unknown };
          fs.mkdirSync(profDir, { recursive: true });
          fs.writeFileSync(path.join(profDir, `browser-replay-${form}-${Date.now()}.cpuprofile`), JSON.stringify(profile));
          if (worker && form === 'worker') {
            const { profile: wp } = (await worker('Profiler.stop')) as { profile: Parameters<typeof busyMs>[0] };
            fs.writeFileSync(path.join(profDir, `browser-replay-worker-thread-${Date.now()}.cpuprofile`), JSON.stringify(wp));
            workerNote = `; socket worker ${((busyMs(wp) * 1000) / r.count).toFixed(2)} µs CPU per event (profiled)`;
          }
        }
        sampling = false;
        await sampler;
        const after = await heapUsed(cdp);
        peak = Math.max(peak, after);
        const expected = (count * (count - 1)) / 2;
        const mb = (n: number) => (n / MiB).toFixed(1);
        rows.push({
          scenario: 'browser-replay',
          system: `${form === 'node' ? 'ws in node' : 'web-client chromium subscribe'} ${SYSTEM_NAMES[form]}${creditBytes ? ` credit ${creditBytes / MiB} MiB` : ''}`,
          eventsPerSec: Math.round(r.count / (r.ms / 1000)),
          notes:
            `${count} stored JSON events (~100 B, string keys) in ${PARTITIONS} partitions from earliest; ` +
            (form === 'node' ? '' : `heap ${mb(before)} MB before, ${mb(peak)} MB peak, ${mb(after)} MB after; `) +
            (form === 'node' ? '' : `main thread ${((cpuSeconds * 1e6) / r.count).toFixed(2)} µs CPU per event, busy ${Math.round((100 * cpuSeconds * 1000) / r.ms)}% of the run${workerNote}; `) +
            `hub ${(hubUs / r.count).toFixed(2)} µs CPU per event (kernel ${(hubSysUs / r.count).toFixed(2)})` +
            (r.checksum === expected ? '' : `; CHECKSUM MISMATCH ${r.checksum} != ${expected}`),
        });
      }
    await ctx?.close();
  } finally {
    await browser?.close().catch(() => undefined);
    await raw?.close();
    await pages.close();
    await hub.stop();
    hub.cleanup();
  }
  return rows;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const onlyArg = process.argv.indexOf('--only');
  const only = onlyArg > 0 ? (process.argv[onlyArg + 1].split(',') as Form[]) : undefined;
  runBrowserReplayBench({ quick: process.argv.includes('--quick'), only })
    .then((rows) => {
      for (const r of rows) console.log(`${r.system}: ${(r.eventsPerSec / 1000).toFixed(1)} k events/s — ${r.notes ?? ''}`);
      process.exit(0);
    })
    .catch((e: unknown) => {
      console.error(e);
      process.exit(1);
    });
}
