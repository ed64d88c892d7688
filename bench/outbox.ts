/**
 * The outbox bench: how fast `send()` puts events into the outbox (group
 * commit) and how fast a full outbox drains to a real hub after reconnecting.
 *
 *   node --import tsx bench/outbox.ts [--quick] [--chromium] [--cpu-prof DIR]
 *
 * --chromium runs only the Chromium rows; --cpu-prof DIR writes the page's
 * CPU profile (CDP Profiler) of the relaxed enqueue, sendMany and drain rows
 * there (outbox-enqueue/-sendmany/-drain.cpuprofile), for
 * `node --import tsx bench/cpuprofile-top.ts FILE`.
 *
 * Rows:
 * - Chromium, IndexedDB outbox, durability relaxed / strict: a burst of
 *   sends (not awaited one by one) from a page that loaded the built bundle,
 *   with the hub cut off (a blocked proxy) so that nothing drains meanwhile;
 *   events/s = events / time until every send resolved. Goals (issue #13):
 *   enqueue ≥ 150,000/s, drain ≥ 200,000/s, sendMany ≥ 100,000/s.
 *   Each Chromium row's notes also give events per second of the page's
 *   main-thread CPU (CDP Performance.getMetrics `ThreadTime`): on a shared,
 *   loaded machine the wall-clock rate swings 2–3× between runs, the CPU
 *   cost per event much less. IndexedDB's own work (in the browser
 *   process) is not in it.
 * - Chromium, sends awaited one at a time: what a burst saves.
 * - Chromium, drain after reconnect: the proxy is unblocked and flush() is
 *   timed until the hub has acked every event (fsync per batch on the hub).
 *   50,000 events in the quick run (was 20,000: with requests of 4,000
 *   records and 5 in flight, 20,000 events are one window, and the row
 *   measured start-up: reconnect, first read, metadata, first assign, one
 *   round trip). After an untimed drain of 5,000 events on another topic of
 *   the same outbox (the JIT warm, as the Node rows warm up): cold, the page
 *   spent about twice the CPU per event. The client has no ack listener that
 *   reads per-event offsets (the test helpers' does).
 * - Chromium, sendMany(): n events in calls of 1,000, each call one
 *   IndexedDB transaction, awaited one after the other.
 * - Node, file outbox (fdatasync per group commit): enqueue (a burst of
 *   sends, as the issue's new-user script: sends not awaited one by one,
 *   then `Promise.all`; sendMany calls of 1,000) and drain (timed from the
 *   reconnect, not the backoff before it, to the last ack). After an untimed
 *   warm-up on another outbox file (as the Chromium rows warm up first).
 * - Node, memory outbox → a 4-partition topic (hub fsync always): events/s
 *   from the first sendMany until flush() saw every event acked (the
 *   outbox's 100,000-event bound makes sendMany wait for acks: backpressure).
 *   The client picks partitions and encodes record batches (batch form).
 *   After an untimed warm-up of 100,000 events on another topic. The notes
 *   give the client's and the hub's CPU per event (the two share the machine).
 * - The bench's own batch-form load generator (bench/load/ws-driver.ts, one
 *   producer, pre-encoded batches of 100 × 100 B, 64 in flight) against the
 *   same hub right before: the row the client's is compared with.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startHub, type Hub } from '../harness/hub.ts';
import { startTcpProxy, type TcpProxy } from '../harness/tcp-proxy.ts';
import type { Page } from 'playwright-core';
import { BUNDLE, gotoTestPage, launchChromium, startPageServer } from '../harness/browser.ts';
import { launchRawChromium, type RawChromium } from './lib/raw-chromium.ts';
import { createClient } from '../web-client/node.ts';
import { produce as loadGenerator } from './load/ws-driver.ts';
import { PROFILES } from './lib/profiles.ts';

export interface OutboxBenchRow {
  scenario: 'outbox';
  system: string;
  eventsPerSec: number;
  notes?: string;
}

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** Builds the bundle when it is missing or older than the client's sources. */
function ensureBundle(): void {
  const srcDir = path.join(ROOT, 'web-client');
  const newest = Math.max(...fs.readdirSync(srcDir).map((f) => fs.statSync(path.join(srcDir, f)).mtimeMs));
  if (fs.existsSync(BUNDLE) && fs.statSync(BUNDLE).mtimeMs >= newest) return;
  execFileSync(process.execPath, [path.join(ROOT, 'node_modules/vite/bin/vite.js'), 'build', '--config', 'web-client/vite.config.ts'], { cwd: ROOT, stdio: 'ignore' });
}

/** Reads the page's main-thread CPU time in seconds (CDP Performance `ThreadTime`, counted from this call's session). */
async function mainThreadCpu(page: Page): Promise<() => Promise<number>> {
  const session = await page.context().newCDPSession(page);
  await session.send('Performance.enable');
  return async () => {
    const { metrics } = await session.send('Performance.getMetrics');
    return metrics.find((m) => m.name === 'ThreadTime')?.value ?? NaN;
  };
}

/** The bench process's CPU per event in µs: all its threads (the fsyncs' thread pool), and for the file rows the in-process TCP proxy too. */
function cpuPerEvent(used: NodeJS.CpuUsage, events: number): string {
  return ((used.user + used.system) / events).toFixed(1);
}

/** Writes a page's CPU profile (CDP Profiler.stop) as DIR/outbox-<what>.cpuprofile. */
function writeProfile(dir: string, what: string, profile: unknown): void {
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, `outbox-${what}.cpuprofile`), JSON.stringify(profile));
}

/** A ~100-byte JSON value, like a UI event. */
const VALUE_NOTE = 'JSON values of ~100 bytes, 16 keys';

export async function runOutboxBench(opts: { quick: boolean; chromiumOnly?: boolean; cpuProfDir?: string }): Promise<OutboxBenchRow[]> {
  ensureBundle();
  const n = opts.quick ? 20_000 : 100_000;
  const nDrain = opts.quick ? 50_000 : 100_000;
  const nSequential = opts.quick ? 1_000 : 5_000;
  const rows: OutboxBenchRow[] = [];
  let hub: Hub | undefined;
  let proxy: TcpProxy | undefined;
  const pages = await startPageServer();
  const browser = await launchChromium();
  let rawDrain: RawChromium | undefined;
  try {
    hub = await startHub();
    proxy = await startTcpProxy(hub.port);
    const ctx = await browser.newContext();
    const page = await ctx.newPage();
    await gotoTestPage(page, pages.url);
    const cpu = await mainThreadCpu(page);
    const profiler = await page.context().newCDPSession(page);

    const enqueue = (name: string, durability: 'relaxed' | 'strict', count: number, sequential: boolean) =>
      page.evaluate(
        async ({ url, name, durability, count, sequential }) => {
          const c = window.T.createClient({ url, name, durability, backoffInitialMs: 50, backoffMaxMs: 200 });
          await c.pending(); // outbox open before the clock starts
          const pad = 'x'.repeat(60);
          const t0 = performance.now();
          if (sequential) {
            for (let i = 0; i < count; i++) await c.send('bench-outbox', { key: `k${i % 16}`, value: { i, t: Date.now(), pad } });
          } else {
            const sends = new Array<Promise<void>>(count);
            for (let i = 0; i < count; i++) sends[i] = c.send('bench-outbox', { key: `k${i % 16}`, value: { i, t: Date.now(), pad } });
            await Promise.all(sends);
          }
          const ms = performance.now() - t0;
          await c.close();
          return ms;
        },
        { url: proxy!.wsUrl, name, durability, count, sequential },
      );

    proxy.block(true);
    proxy.cutAll();
    // JIT, heap and IndexedDB warm before the clock counts, with a burst as large as the timed ones: after a
    // warm-up of 5,000, the first timed row (relaxed) paid for growing the page's heap and tiering up the
    // send path, and came out slower than strict (123.8 k against 250.8 k in a full run) with the same
    // main-thread CPU per event (with strict run first, relaxed came out faster: 177 k against 103 k).
    await enqueue('bench-warmup', 'relaxed', n, false);
    let cpuAt = await cpu();
    /** Events per main-thread CPU-second since the last call. */
    const cpuNote = async (events: number) => {
      const now = await cpu();
      const spent = now - cpuAt;
      cpuAt = now;
      return `main thread ${Math.round(events / spent / 1000)} k events/CPU-s`;
    };
    if (opts.cpuProfDir) {
      await profiler.send('Profiler.enable');
      await profiler.send('Profiler.start');
    }
    const relaxedMs = await enqueue('bench-relaxed', 'relaxed', n, false);
    if (opts.cpuProfDir) writeProfile(opts.cpuProfDir, 'enqueue', (await profiler.send('Profiler.stop')).profile);
    rows.push({
      scenario: 'outbox',
      system: 'web-client chromium indexeddb relaxed: enqueue',
      eventsPerSec: n / (relaxedMs / 1000),
      notes: `${n} sends in one burst, group commit; ${VALUE_NOTE}; ${await cpuNote(n)}`,
    });
    const strictMs = await enqueue('bench-strict', 'strict', n, false);
    rows.push({
      scenario: 'outbox',
      system: 'web-client chromium indexeddb strict: enqueue',
      eventsPerSec: n / (strictMs / 1000),
      notes: `${n} sends in one burst, group commit, durability strict; ${await cpuNote(n)}`,
    });
    const seqMs = await enqueue('bench-seq', 'relaxed', nSequential, true);
    cpuAt = await cpu();
    rows.push({
      scenario: 'outbox',
      system: 'web-client chromium indexeddb relaxed: enqueue, each send awaited',
      eventsPerSec: nSequential / (seqMs / 1000),
      notes: `${nSequential} sends, one IndexedDB transaction each`,
    });
    if (opts.cpuProfDir) await profiler.send('Profiler.start');
    const manyMs = await page.evaluate(
      async ({ url, count }) => {
        const c = window.T.createClient({ url, name: 'bench-many', backoffInitialMs: 50, backoffMaxMs: 200 });
        await c.pending();
        const pad = 'x'.repeat(60);
        const t0 = performance.now();
        for (let base = 0; base < count; base += 1_000) {
          const events = new Array(1_000);
          for (let i = 0; i < 1_000; i++) events[i] = { key: `k${i % 16}`, value: { i: base + i, t: Date.now(), pad } };
          await c.sendMany('bench-outbox-many', events);
        }
        const ms = performance.now() - t0;
        await c.close();
        return ms;
      },
      { url: proxy.wsUrl, count: n },
    );
    if (opts.cpuProfDir) writeProfile(opts.cpuProfDir, 'sendmany', (await profiler.send('Profiler.stop')).profile);
    rows.push({
      scenario: 'outbox',
      system: 'web-client chromium indexeddb relaxed: sendMany',
      eventsPerSec: n / (manyMs / 1000),
      notes: `${n} events in awaited sendMany calls of 1,000 (one transaction each); ${await cpuNote(n)}`,
    });

    await ctx.close();

    // Drain, in a browser of its own (Chromium keeps an origin's IndexedDB databases in one
    // LevelDB, so the outboxes above would weigh on it): n events queued offline, then the
    // proxy lets the page through and flush() is timed until the hub has acked them all.
    // That browser is driven over a bare DevTools pipe (bench/lib/raw-chromium.ts), as the replay
    // bench's is: Playwright has Chromium report every WebSocket frame to it with its payload,
    // which the enqueue rows above do not pay (their socket is blocked) but a drain does.
    rawDrain = launchRawChromium();
    const drainPage = await rawDrain.openTestPage(pages.url);
    /** Queues `count` events offline (sendMany calls of 5,000), the client created on first use. */
    const queueOffline = (topic: string, count: number) =>
      drainPage.evaluate(
        async ({ url, topic, count }) => {
          const g = globalThis as unknown as { benchDrain?: ReturnType<typeof window.T.createClient> };
          g.benchDrain ??= window.T.createClient({ url, name: 'bench-drain', backoffInitialMs: 20, backoffMaxMs: 50 });
          for (let base = 0; base < count; base += 5_000) {
            const events = new Array(Math.min(5_000, count - base));
            for (let i = 0; i < events.length; i++) events[i] = { key: `k${(base + i) % 16}`, value: { n: base + i } };
            await g.benchDrain.sendMany(topic, events);
          }
        },
        { url: proxy!.wsUrl, topic, count },
      );
    const drainTimed = () =>
      drainPage.evaluate(async () => {
        const c = (globalThis as unknown as { benchDrain: ReturnType<typeof window.T.createClient> }).benchDrain;
        const t0 = performance.now();
        let firstAck = NaN;
        const off = c.on('ack', () => {
          if (Number.isNaN(firstAck)) firstAck = performance.now() - t0;
        });
        await c.flush();
        off();
        return { drainMs: performance.now() - t0, firstAckMs: firstAck };
      }, null);
    await queueOffline('bench-outbox-drain-warm', 5_000);
    proxy.block(false);
    await drainTimed();
    proxy.block(true);
    proxy.cutAll();
    await queueOffline('bench-outbox-drain', nDrain);
    await drainPage.send('Performance.enable');
    const drainCpu = async (): Promise<number> =>
      (await drainPage.send<{ metrics: Array<{ name: string; value: number }> }>('Performance.getMetrics')).metrics.find((m) => m.name === 'ThreadTime')?.value ?? NaN;
    const drainCpuAt = await drainCpu();
    if (opts.cpuProfDir) {
      await drainPage.send('Profiler.enable');
      await drainPage.send('Profiler.start');
    }
    proxy.block(false);
    // The first ack's time shows how much of the drain is its start: reconnect, the first read,
    // the partition count, the first assign and one round trip (fsync included).
    const { drainMs, firstAckMs } = await drainTimed();
    if (opts.cpuProfDir) writeProfile(opts.cpuProfDir, 'drain', (await drainPage.send<{ profile: unknown }>('Profiler.stop')).profile);
    rows.push({
      scenario: 'outbox',
      system: 'web-client chromium indexeddb: drain after reconnect',
      eventsPerSec: nDrain / (drainMs / 1000),
      notes: `${nDrain} events after an untimed drain of 5,000, batches of 4000, up to 5 in flight per topic; reconnect included, first ack after ${Math.round(firstAckMs)} ms; hub fsync=always; main thread ${Math.round(nDrain / ((await drainCpu()) - drainCpuAt) / 1000)} k events/CPU-s`,
    });

    await rawDrain.close();
    rawDrain = undefined;
    if (opts.chromiumOnly) return rows;

    // Node gateway: file outbox, fdatasync per group commit.
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tributary-outbox-bench-'));
    try {
      proxy.block(true);
      proxy.cutAll();
      const pad = 'x'.repeat(60);
      // Warm-up (not timed): the JIT has compiled send(), the journal and the drain before the clock counts,
      // as the Chromium rows warm up first.
      const w = createClient({ url: proxy.wsUrl, outbox: { file: path.join(dir, 'warm.outbox') }, name: 'bench-file-warm', backoffInitialMs: 50, backoffMaxMs: 200 });
      await w.pending();
      for (let round = 0; round < 3; round++) {
        const warm = new Array<Promise<void>>(5_000);
        for (let i = 0; i < warm.length; i++) warm[i] = w.send('bench-outbox-warm', { key: `k${i % 16}`, value: { i, t: Date.now(), pad } });
        await Promise.all(warm);
        await w.sendMany(
          'bench-outbox-warm',
          Array.from({ length: 1_000 }, (_, i) => ({ key: `k${i % 16}`, value: { i, t: Date.now(), pad } })),
        );
      }
      proxy.block(false);
      await w.flush();
      await w.close();
      proxy.block(true);
      proxy.cutAll();
      const c = createClient({ url: proxy.wsUrl, outbox: { file: path.join(dir, 'bench.outbox') }, name: 'bench-file', backoffInitialMs: 50, backoffMaxMs: 200 });
      await c.pending();
      let cpu0 = process.cpuUsage();
      let t0 = performance.now();
      const sends = new Array<Promise<void>>(n);
      for (let i = 0; i < n; i++) sends[i] = c.send('bench-outbox-node', { key: `k${i % 16}`, value: { i, t: Date.now(), pad } });
      // The send() calls themselves (validation, record bodies, one promise each) run before any commit can:
      // their share of the row says whether send()'s CPU or the journal's writes and fdatasyncs bound it.
      const callsMs = performance.now() - t0;
      await Promise.all(sends);
      const enqMs = performance.now() - t0;
      const enqCpu = process.cpuUsage(cpu0);
      rows.push({
        scenario: 'outbox',
        system: 'web-client node file outbox: enqueue',
        eventsPerSec: n / (enqMs / 1000),
        notes: `${n} sends in one burst, each encoded at the call into the journal group being gathered (one promise per group); one writev + fdatasync per write; the send() calls took ${Math.round(callsMs)} ms of ${Math.round(enqMs)}; client CPU ${cpuPerEvent(enqCpu, n)} µs/event`,
      });
      // The clock starts once the client is connected again: the drain, not the reconnect backoff (up to
      // 200 ms here, a large share of 20,000 events' drain), is what the row measures.
      const connected = new Promise<void>((resolve) => {
        const off = c.on('state', (s) => {
          if (s !== 'open') return;
          off();
          resolve();
        });
      });
      proxy.block(false);
      await connected;
      cpu0 = process.cpuUsage();
      t0 = performance.now();
      await c.flush();
      const drMs = performance.now() - t0;
      rows.push({
        scenario: 'outbox',
        system: 'web-client node file outbox: drain after reconnect',
        eventsPerSec: n / (drMs / 1000),
        notes: `${n} events, from the reconnect to the last ack; assignments and removals journaled with fdatasync; client CPU ${cpuPerEvent(process.cpuUsage(cpu0), n)} µs/event`,
      });
      await c.close();
      // The same events through sendMany (code that has them at hand): calls of 1,000, awaited one after the other.
      proxy.block(true);
      proxy.cutAll();
      const m = createClient({ url: proxy.wsUrl, outbox: { file: path.join(dir, 'bench-many.outbox') }, name: 'bench-file-many', backoffInitialMs: 50, backoffMaxMs: 200 });
      await m.pending();
      cpu0 = process.cpuUsage();
      t0 = performance.now();
      for (let base = 0; base < n; base += 1_000) {
        const events = new Array(1_000);
        for (let i = 0; i < 1_000; i++) events[i] = { key: `k${(base + i) % 16}`, value: { i: base + i, t: Date.now(), pad } };
        await m.sendMany('bench-outbox-node', events);
      }
      const manyMs = performance.now() - t0;
      const manyCpu = process.cpuUsage(cpu0);
      rows.push({
        scenario: 'outbox',
        system: 'web-client node file outbox: sendMany',
        eventsPerSec: n / (manyMs / 1000),
        notes: `${n} events in awaited sendMany calls of 1,000 (one journal write + fdatasync each); client CPU ${cpuPerEvent(manyCpu, n)} µs/event`,
      });
      await m.close();
      proxy.block(false);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }

    // The bench's own batch-form load generator against the same hub, for the ratio below.
    await fetch(`${hub.url}/v1/topics`, { method: 'POST', body: JSON.stringify({ name: 'bench-gen-4p', partitions: 4 }) });
    const profile = PROFILES[opts.quick ? 'quick' : 'full'].produce;
    const gen = await loadGenerator({ kind: 'ws', port: hub.port, hubProtocol: true, topic: 'bench-gen-4p' }, { ...profile, producers: 1, form: 'batch' });
    const genRate = gen.events / (gen.elapsedMs / 1000);
    rows.push({
      scenario: 'outbox',
      system: 'load generator (batch form, 1 producer) → same hub',
      eventsPerSec: genRate,
      notes: `bench/load/ws-driver.ts: pre-encoded batches of ${profile.batch} × ${profile.valueBytes} B, ${profile.window} in flight; hub fsync=always${gen.errors ? `; ${gen.errors} errors` : ''}`,
    });

    // Node service: memory outbox straight to a 4-partition topic, acked and durable (fsync always).
    const total = opts.quick ? 200_000 : 1_000_000;
    await fetch(`${hub.url}/v1/topics`, { method: 'POST', body: JSON.stringify({ name: 'bench-client-4p', partitions: 4 }) });
    const value = new Uint8Array(100);
    const chunk = Array.from({ length: 10_000 }, (_, i) => ({ key: `k${i % 64}`, value }));
    // Warm-up (not timed), on a topic of its own: a cold first run measures the JIT more than the client.
    await fetch(`${hub.url}/v1/topics`, { method: 'POST', body: JSON.stringify({ name: 'bench-client-warm', partitions: 4 }) });
    const warm = createClient({ url: hub.wsUrl, outbox: 'memory', name: 'bench-mem-warm' });
    for (let sent = 0; sent < 100_000; sent += chunk.length) await warm.sendMany('bench-client-warm', chunk);
    await warm.flush();
    await warm.close();
    const mem = createClient({ url: hub.wsUrl, outbox: 'memory', name: 'bench-mem' });
    await mem.pending();
    const hubCpu0 = processCpuMs(hub.proc.pid);
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    for (let sent = 0; sent < total; sent += chunk.length) await mem.sendMany('bench-client-4p', chunk);
    await mem.flush();
    const memMs = performance.now() - t0;
    const memCpu = process.cpuUsage(cpu0);
    const hubCpuMs = processCpuMs(hub.proc.pid) - hubCpu0;
    await mem.close();
    const memRate = total / (memMs / 1000);
    rows.push({
      scenario: 'outbox',
      system: 'web-client node memory outbox → 4 partitions: produce acked',
      eventsPerSec: memRate,
      notes: `${total} events of 100-byte values, sendMany of 10,000, until flush(); batch form, lanes per partition, batches of 1000, up to 5 in flight each; hub fsync=always; client CPU ${((memCpu.user + memCpu.system) / total).toFixed(2)} µs/event${Number.isNaN(hubCpuMs) ? '' : `, hub ${((hubCpuMs * 1000) / total).toFixed(2)}`}; ${Math.round((100 * memRate) / genRate)}% of the load generator's row`,
    });
  } finally {
    await rawDrain?.close().catch(() => undefined);
    await browser.close().catch(() => undefined);
    await pages.close();
    await proxy?.close();
    await hub?.stop();
    hub?.cleanup();
  }
  return rows;
}

/** A process's CPU time so far (user + system, all threads) from /proc (ticks of 10 ms on Linux), in ms; NaN where there is no /proc. */
function processCpuMs(pid: number | undefined): number {
  try {
    const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return ((Number(f[11]) + Number(f[12])) * 1000) / 100;
  } catch {
    return NaN;
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const prof = process.argv.indexOf('--cpu-prof');
  const rows = await runOutboxBench({ quick: process.argv.includes('--quick'), chromiumOnly: process.argv.includes('--chromium'), cpuProfDir: prof > 0 ? process.argv[prof + 1] : undefined });
  console.table(rows.map((r) => ({ system: r.system, 'events/s': Math.round(r.eventsPerSec).toLocaleString('en'), notes: r.notes ?? '' })));
}
