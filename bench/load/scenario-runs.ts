/**
 * The scenario loops the drivers share, so that every system is measured the
 * same way: produce lanes that await one batch at a time, a paced live run
 * with latency per delivered event, and a burst of connections held open. A
 * driver supplies only its client's calls.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { monitorEventLoopDelay, PerformanceObserver } from 'node:perf_hooks';
import { LatencyRecorder, errorText, now, openMany, pace, sleep, waitUntil } from './common.ts';
import type { ConnectionsParams, LatencyParams, LoadResult, ProduceParams, Target } from './job.ts';
import { readSchedStat, readServerRss, type SchedStat } from './rss.ts';

/** How long a live run waits after the last send for the subscribers to catch up. */
const LIVE_CATCH_UP_MS = 5_000;
/** The disk's own fdatasync latency, probed before a live run (one 1 KiB append + fdatasync per ms). */
const FSYNC_PROBE_MS = 1_000;
/**
 * The probe also says what share of its time the disk spent inside writes
 * longer than this. With one writer per log, a request that arrives during
 * a slow write waits for it to end, so that share of the requests is late
 * by at least this much: above 1%, a p99 under it cannot be had from this
 * disk at that moment (3 ms: issue 13's p99 goal).
 */
const SLOW_WRITE_MS = 3;
/** Latencies of the measured window's first this-many ms are also reported apart (warm-up left over). */
const EARLY_WINDOW_MS = 1_000;
/**
 * The window is also cut into slices this long, each with its own p99: a
 * tail made by a few stalls (the disk, a CPU taken by another process) shows
 * as a few bad slices among good ones, a tail the system makes on every
 * request as every slice alike, and warm-up as bad first slices.
 */
const SLICE_MS = 1_000;
/** Slices with fewer deliveries than this (the catch-up after the last send) get no p99 of their own. */
const MIN_SLICE_DELIVERIES = 100;

/**
 * p50/p99 of a 1 KiB append + fdatasync in the temp directory (where the
 * servers keep their data), paced every ms for `durationMs`: what the disk
 * gives a durable write on its own at this moment, beside what a server adds.
 */
async function probeFdatasync(durationMs: number): Promise<string> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tributary-bench-fsync-'));
  const rec = new LatencyRecorder();
  let slowMs = 0;
  let spentMs = 0;
  try {
    const fd = fs.openSync(path.join(dir, 'probe'), 'a');
    const block = Buffer.alloc(1024, 0x61);
    const start = now();
    const end = start + durationMs;
    while (now() < end) {
      const t = now();
      await new Promise<void>((resolve, reject) => fs.write(fd, block, (e) => (e ? reject(e) : fs.fdatasync(fd, (e2) => (e2 ? reject(e2) : resolve())))));
      const took = now() - t;
      rec.record(took);
      if (took > SLOW_WRITE_MS) slowMs += took;
      await sleep(1);
    }
    spentMs = now() - start;
    fs.closeSync(fd);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  const p = rec.percentiles();
  if (!p) return '';
  const slowShare = spentMs > 0 ? ((100 * slowMs) / spentMs).toFixed(1) : '?';
  return `disk alone (1 KiB append + fdatasync, ${p.count} in ${durationMs} ms before the run): p50 ${p.p50Ms.toFixed(2)} ms, p99 ${p.p99Ms.toFixed(2)} ms, ${slowShare}% of the time inside writes over ${SLOW_WRITE_MS} ms`;
}

/**
 * A produce run for clients whose acks come back per batch: `window` lanes per
 * client, each sending a batch and awaiting its acks before the next. The
 * warm-up starts when the run is made; acks before it ends are not counted.
 */
export class ProduceLanes {
  private acked = 0;
  private sent = 0;
  private errors = 0;
  private lastAckAt = 0;
  private readonly notes: string[] = [];
  private readonly countFrom: number;
  private readonly stopAt: number;

  /** `what` names the request in the first error's note (`publish`, `XADD`). */
  constructor(
    private readonly p: ProduceParams,
    private readonly what: string,
  ) {
    this.countFrom = now() + p.warmupMs;
    this.stopAt = this.countFrom + p.durationMs;
  }

  /** Runs every client's lanes until the duration or `maxEvents` is reached; `sendBatch` resolves when the batch is acked. */
  async drive<C>(clients: C[], sendBatch: (c: C) => Promise<unknown>): Promise<void> {
    const lane = async (c: C): Promise<void> => {
      while (now() < this.stopAt && this.sent < this.p.maxEvents) {
        this.sent += this.p.batch;
        try {
          await sendBatch(c);
          const at = now();
          if (at >= this.countFrom) {
            this.acked += this.p.batch;
            this.lastAckAt = at;
          }
        } catch (e) {
          if (this.errors++ === 0) this.notes.push(`first ${this.what} error: ${errorText(e)}`);
        }
      }
    };
    await Promise.all(clients.map((c) => Promise.all(Array.from({ length: this.p.window }, () => lane(c)))));
  }

  result(rssBytes: number | undefined): LoadResult {
    const { acked, errors, notes } = this;
    return { events: acked, bytes: acked * this.p.valueBytes, elapsedMs: (this.lastAckAt || now()) - this.countFrom, errors, notes, rssBytes };
  }
}

/**
 * A live run: one producer paced at `rate` and `subscribers` subscribers that
 * report each delivery through `arrived`; deliveries count only in the
 * measured window, after the warm-up.
 */
export class LiveRun {
  /** Sends that failed; the driver counts them. */
  errors = 0;
  private readonly latencies = new LatencyRecorder();
  private readonly early = new LatencyRecorder();
  private readonly late = new LatencyRecorder();
  private readonly slices: LatencyRecorder[] = [];
  private measuredFrom = 0;
  private fsyncNote = '';
  private schedNote = '';
  private measuring = false;
  private delivered = 0;
  private expected = 0;
  private elapsedMs = 0;
  private rssBytes: number | undefined;
  /** The load process's own delays in the measured window (they add to every latency it measures). */
  private loadNote = '';

  constructor(
    private readonly t: Target,
    private readonly p: LatencyParams,
    private readonly subscribers: number,
  ) {}

  /** `count` events stamped `sentAt` arrived at `at` (one subscriber). */
  arrived(sentAt: number, count = 1, at = now()): void {
    if (!this.measuring) return;
    this.delivered += count;
    this.latencies.recordMany(at - sentAt, count);
    (at - this.measuredFrom < EARLY_WINDOW_MS ? this.early : this.late).recordMany(at - sentAt, count);
    const slice = Math.floor((at - this.measuredFrom) / SLICE_MS);
    (this.slices[slice] ??= new LatencyRecorder()).recordMany(at - sentAt, count);
  }

  /**
   * Paces `send(n)` through the warm-up and the measured window, waits for
   * every subscriber to have every event (or gives up after LIVE_CATCH_UP_MS),
   * then samples the server's RSS before the driver closes its clients.
   */
  async measure(send: (n: number) => void): Promise<void> {
    const tickMs = this.subscribers > 1 ? 10 : 1;
    this.fsyncNote = await probeFdatasync(FSYNC_PROBE_MS);
    await pace(this.p.rate, this.p.warmupMs, tickMs, send);
    this.measuring = true;
    const loop = monitorEventLoopDelay({ resolution: 1 });
    const gcPauses: number[] = [];
    const gc = new PerformanceObserver((list) => {
      for (const e of list.getEntries()) gcPauses.push(e.duration);
    });
    gc.observe({ entryTypes: ['gc'] });
    loop.enable();
    const serverBefore = readSchedStat(this.t.serverPid);
    const selfBefore = readSchedStat(process.pid);
    const start = now();
    this.measuredFrom = start;
    let requests = 0;
    const sent = await pace(this.p.rate, this.p.durationMs, tickMs, (n) => {
      requests++;
      send(n);
    });
    this.expected = sent * this.subscribers;
    await waitUntil(() => this.delivered >= this.expected, LIVE_CATCH_UP_MS, 10);
    this.elapsedMs = now() - start;
    this.measuring = false;
    loop.disable();
    gc.disconnect();
    const serverAfter = readSchedStat(this.t.serverPid);
    const selfAfter = readSchedStat(process.pid);
    // Time runnable but waiting for a CPU (other processes had it): latency no code of ours can remove.
    // Per request too: under load the pacer sends fewer, larger requests, so window ms are not requests.
    const sched = (name: string, a?: SchedStat, b?: SchedStat) =>
      a && b
        ? `${name} on CPU ${(b.cpuMs - a.cpuMs).toFixed(0)} ms (kernel ${(b.kernelMs - a.kernelMs).toFixed(0)}; ` +
          `${(((b.cpuMs - a.cpuMs) * 1000) / Math.max(1, requests)).toFixed(0)} µs per request), waiting for a CPU ${(b.waitMs - a.waitMs).toFixed(0)} ms`
        : '';
    this.schedNote = [sched('server', serverBefore, serverAfter), sched('load', selfBefore, selfAfter)].filter(Boolean).join(', ');
    if (this.schedNote) this.schedNote = `in the ${this.elapsedMs.toFixed(0)} ms window, ${requests} requests (all threads): ${this.schedNote}`;
    const ms = (ns: number) => (ns / 1e6).toFixed(1);
    const gcTotal = gcPauses.reduce((a, b) => a + b, 0);
    // monitorEventLoopDelay reports delay beyond its 1 ms resolution timer: the time an event waited for the loop.
    this.loadNote =
      `load process: event-loop delay p99 ${ms(loop.percentile(99))} ms, max ${ms(loop.max)} ms; ` +
      `${gcPauses.length} GC pauses, ${gcTotal.toFixed(1)} ms in all, longest ${Math.max(0, ...gcPauses).toFixed(1)} ms`;
    this.rssBytes = readServerRss(this.t);
  }

  /** The p99 of each SLICE_MS of the window in order (slices with too few deliveries left out). */
  private sliceNote(): string {
    const p99s = this.slices.filter((r) => r && r.count >= MIN_SLICE_DELIVERIES).map((r) => r.percentiles()!.p99Ms.toFixed(1));
    return p99s.length >= 2 ? `p99 per ${SLICE_MS} ms of the window, in order: ${p99s.join(', ')} ms` : '';
  }

  result(): LoadResult {
    const { delivered, expected, elapsedMs, errors, rssBytes } = this;
    const notes = delivered < expected ? [`delivered ${delivered} of ${expected} expected`] : [];
    if (this.loadNote) notes.push(this.loadNote);
    if (this.fsyncNote) notes.push(this.fsyncNote);
    if (this.schedNote) notes.push(this.schedNote);
    const e = this.early.percentiles();
    const l = this.late.percentiles();
    if (e && l) notes.push(`p99 in the first ${EARLY_WINDOW_MS} ms of the window ${e.p99Ms.toFixed(2)} ms, after it ${l.p99Ms.toFixed(2)} ms`);
    const sliceNote = this.sliceNote();
    if (sliceNote) notes.push(sliceNote);
    return { events: delivered, bytes: delivered * this.p.valueBytes, elapsedMs, latency: this.latencies.percentiles(), errors, notes, rssBytes };
  }
}

/**
 * Opens `count` connections (`concurrency` at once) in two halves, lets the
 * server settle after each, samples its RSS against the RSS before, then
 * closes them. The RSS added by the second half is the marginal cost of a
 * connection: the first half also pays for what grows once (V8's young
 * generation, caches, code), which divided by the count would look like a
 * cost per connection. A connection whose `open` throws counts as failed.
 */
export async function holdConnections<C>(t: Target, p: ConnectionsParams, open: (i: number) => Promise<C>, close: (c: C) => void): Promise<LoadResult> {
  const base = readServerRss(t);
  const start = now();
  let failed = 0;
  let firstError = '';
  const openOrNull = async (i: number): Promise<C | null> => {
    try {
      return await open(i);
    } catch (e) {
      if (failed++ === 0) firstError = errorText(e);
      return null;
    }
  };
  const half = Math.floor(p.count / 2);
  const first = await openMany(half, p.concurrency, openOrNull);
  let settledMs = 0;
  await sleep(p.settleMs);
  settledMs += p.settleMs;
  const halfRss = readServerRss(t);
  const firstHeld = first.filter((c) => c !== null).length;
  const second = await openMany(p.count - half, p.concurrency, (i) => openOrNull(half + i));
  const elapsedMs = now() - start - settledMs;
  await sleep(p.settleMs);
  const rssBytes = readServerRss(t);
  const held = [...first, ...second].filter((c) => c !== null);
  for (const c of held) close(c);
  const notes = failed ? [`${failed} connections failed (${firstError})`] : [];
  if (halfRss !== undefined && rssBytes !== undefined && held.length > firstHeld) {
    notes.push(`marginal ${((rssBytes - halfRss) / (held.length - firstHeld) / 1024).toFixed(1)} KiB per connection (RSS from ${firstHeld} to ${held.length} connections)`);
  }
  return { events: held.length, bytes: 0, elapsedMs, errors: failed, notes, rssBytes, rssBaseBytes: base };
}
