/**
 * Shared parts of the crash and flaky-network tests: a producer load through
 * the web client (file outbox, so its idempotent producer id and sequences
 * are the real ones), a subscriber that records what it was given, and the
 * checks on the log and on those deliveries.
 */
import fs from 'node:fs';
import path from 'node:path';
import { createClient, type Client, type SubscriptionHandle } from '../../web-client/node.ts';
import { readPartition, type ReadRecord } from '../../harness/topic-reader.ts';
import { waitFor } from '../../harness/wait.ts';
import type { Hub } from '../../harness/hub.ts';
import type { TcpProxy } from '../../harness/tcp-proxy.ts';

export const SOAK = process.env.TRIBUTARY_SOAK === '1';

/** Client settings for a hub that disappears: retry fast, give up on a silent request or a silent hub quickly. */
const FAST_RETRY = { backoffInitialMs: 50, backoffMaxMs: 300, requestTimeoutMs: 5_000, keepAliveMs: 2_000 } as const;

export interface Load {
  readonly client: Client;
  /** Events queued (their n are base .. base + sent - 1). */
  readonly sent: number;
  /** n → where the hub said it appended it, from the acks the client received. */
  readonly acked: Map<number, { partition: number; offset: number }>;
  /** Acks that named another place for an n acked before (must stay empty). */
  readonly conflicts: string[];
  /** Stops queueing, waits (up to deadlineMs) until everything queued is acked, closes. */
  finish(deadlineMs: number): Promise<void>;
}

/**
 * Queues events { n } with keys `<name>-k0..k7` in batches of `batch`, as
 * long as fewer than `window` are unacknowledged, until finish(). A fresh
 * outbox gives its events ids 1, 2, 3… in send order, so an ack's record
 * with id i is the event n = base + i - 1.
 */
export function startLoad(o: { url: string; topic: string; name: string; base: number; dir: string; batch?: number; window?: number }): Load {
  const file = path.join(o.dir, `${o.name}.outbox`);
  // Small requests: a connection that the chaos cuts after a few KiB still carries whole ones.
  const client = createClient({ url: o.url, outbox: { file }, name: o.name, maxBatchBytes: 8 * 1024, ...FAST_RETRY });
  const acked = new Map<number, { partition: number; offset: number }>();
  const conflicts: string[] = [];
  client.on('error', () => undefined); // DISCONNECTED and friends while the hub is down: the outbox retries
  client.on('ack', (info) => {
    if (info.topic !== o.topic) return;
    for (const r of info.records) {
      const n = o.base + r.id - 1; // the outbox is new: the n-th event queued has id n + 1
      const before = acked.get(n);
      if (before && (before.partition !== r.partition || before.offset !== r.offset)) conflicts.push(`n=${n} acked at ${before.partition}/${before.offset} then at ${r.partition}/${r.offset}`);
      acked.set(n, { partition: r.partition, offset: r.offset });
    }
  });
  const batch = o.batch ?? 20;
  const window = o.window ?? 400;
  let sent = 0;
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      await waitFor(() => stopped || sent - acked.size < window, 120_000, `${o.name}: room in its window`);
      if (stopped) break;
      const events = Array.from({ length: batch }, (_, i) => {
        const n = o.base + sent + i;
        return { key: `${o.name}-k${n % 8}`, value: { n } };
      });
      await client.sendMany(o.topic, events);
      sent += batch;
      // Pacing, not synchronisation: a steady trickle keeps requests in flight at every kill.
      await new Promise((r) => setTimeout(r, 2));
    }
  })();
  loop.catch(() => undefined); // a test that failed closes the client under the loop: finish() still reports it
  return {
    client,
    get sent() {
      return sent;
    },
    acked,
    conflicts,
    async finish(deadlineMs: number) {
      stopped = true;
      await loop;
      await waitFor(() => acked.size >= sent, deadlineMs, `${o.name}: acks for all ${sent} events (have ${acked.size})`);
      await client.close();
    },
  };
}

export interface Delivery {
  partition: number;
  offset: number;
  n: number;
}

export interface Reader {
  client: Client;
  sub: SubscriptionHandle;
  deliveries: Delivery[];
  close(): Promise<void>;
}

/** A subscriber from earliest whose positions persist in its file outbox under `persist`. */
export function startReader(o: { url: string; topic: string; file: string; deliveries?: Delivery[] }): Reader {
  const client = createClient({ url: o.url, outbox: { file: o.file }, name: 'reader', ...FAST_RETRY });
  client.on('error', () => undefined);
  const deliveries = o.deliveries ?? [];
  // Small credit keeps records frames small (a frame is at least one whole batch): a connection the chaos
  // cuts after a few KiB must still carry whole frames, or a reader behind a large one never gets past it.
  const sub = client.subscribe(o.topic, { from: 'earliest', persist: 'reader', creditBytes: 16 * 1024 }, (r) => {
    deliveries.push({ partition: r.partition, offset: r.offset, n: (r.value as { n: number }).n });
  });
  return { client, sub, deliveries, close: () => client.close() };
}

/** The whole topic, per partition in offset order. */
export async function readLog(hubUrl: string, topic: string, partitions: number): Promise<ReadRecord[][]> {
  const out: ReadRecord[][] = [];
  for (let p = 0; p < partitions; p++) out.push(await readPartition(hubUrl, topic, p));
  return out;
}

/**
 * The log holds each expected n exactly once, nothing else, offsets dense
 * from 0, per-key order is send order, and each acknowledged n sits where
 * its ack said. '' when all holds, else what is wrong (first few of each).
 */
export function logProblems(log: ReadRecord[][], loads: Load[]): string {
  const problems: string[] = [];
  const where = new Map<number, { partition: number; offset: number; count: number }>();
  const lastPerKey = new Map<string, number>();
  log.forEach((records, p) => {
    const hole = records.findIndex((r, i) => r.offset !== i);
    if (hole >= 0) problems.push(`partition ${p}: offset ${records[hole].offset} at position ${hole} (not dense)`);
    records.forEach((r) => {
      const n = (r.value as { n?: unknown } | null)?.n;
      if (typeof n !== 'number') {
        problems.push(`${p}/${r.offset} has no n`);
        return;
      }
      const w = where.get(n);
      if (w) w.count++;
      else where.set(n, { partition: p, offset: r.offset, count: 1 });
      const key = String(r.key);
      const last = lastPerKey.get(key);
      if (last !== undefined && n < last) problems.push(`key ${key}: n=${n} after n=${last} (order broken)`);
      lastPerKey.set(key, n);
    });
  });
  const expected = new Set<number>();
  for (const l of loads) {
    for (const c of l.conflicts) problems.push(c);
    const base = Math.min(...[...l.acked.keys()].concat(Infinity));
    for (const [n, at] of l.acked) {
      const w = where.get(n);
      if (!w) problems.push(`acked n=${n} (${at.partition}/${at.offset}) missing from the log`);
      else if (w.partition !== at.partition || w.offset !== at.offset) problems.push(`acked n=${n} at ${at.partition}/${at.offset} but found at ${w.partition}/${w.offset}`);
      expected.add(n);
    }
    if (l.acked.size !== l.sent) problems.push(`load from ${base}: ${l.sent} sent, ${l.acked.size} acked`);
  }
  for (const [n, w] of where) {
    if (w.count > 1) problems.push(`n=${n} appended ${w.count} times`);
    if (!expected.has(n)) problems.push(`n=${n} in the log but never acked`);
  }
  return problems.slice(0, 20).join('\n');
}

/** The deliveries per partition are exactly the log's offsets 0..end-1, in order, with the log's values. */
export function deliveryProblems(log: ReadRecord[][], deliveries: Delivery[]): string {
  const problems: string[] = [];
  log.forEach((records, p) => {
    const got = deliveries.filter((d) => d.partition === p);
    for (let i = 0; i < Math.max(got.length, records.length) && problems.length < 20; i++) {
      const d = got[i];
      const r = records[i];
      if (!d) problems.push(`partition ${p}: offset ${i} never delivered (gap), ${got.length} of ${records.length} delivered`);
      else if (!r) problems.push(`partition ${p}: delivery ${i} (offset ${d.offset}) beyond the log (duplicate)`);
      else if (d.offset !== i) problems.push(`partition ${p}: delivery ${i} is offset ${d.offset} (${d.offset < i ? 'duplicate' : 'gap'})`);
      else if (d.n !== (r.value as { n: number }).n) problems.push(`partition ${p}: offset ${i} delivered n=${d.n}, log has ${(r.value as { n: number }).n}`);
      if (!d || !r || d.offset !== i) break;
    }
  });
  return problems.slice(0, 20).join('\n');
}

export function removeDirs(dirs: string[]): void {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
}

/** What a kill-under-load run keeps, for the test's afterAll to stop and its failure report. */
export interface KillRun {
  hub?: Hub;
  readonly loads: Load[];
  readonly readers: Reader[];
}

/**
 * The crash tests' run: two idempotent producers (file outboxes in
 * `clientDir`) and a reader through `proxy`; `rounds` times, after a random
 * number of further acks, the hub is SIGKILLed and `restart` starts the next
 * one, which the proxy is pointed at; half way the reader closes and resumes
 * from its persisted positions. Then every acknowledged event is in the log
 * exactly once, in per-key order, at dense offsets, and the reader saw every
 * offset once, in order. The seed of the kill moments is in every message.
 */
export async function killUnderLoad(o: {
  run: KillRun;
  proxy: TcpProxy;
  topic: string;
  partitions: number;
  rounds: number;
  clientDir: string;
  restart: () => Promise<Hub>;
  onLoad?: (l: Load) => void;
}): Promise<{ seed: number; log: ReadRecord[][]; deliveries: Delivery[] }> {
  const { run, proxy, topic } = o;
  for (const [i, name] of ['p0', 'p1'].entries()) {
    const l = startLoad({ url: proxy.wsUrl, topic, name, base: i * 1_000_000, dir: o.clientDir });
    run.loads.push(l);
    o.onLoad?.(l);
  }
  const deliveries: Delivery[] = [];
  const readerFile = `${o.clientDir}/reader.outbox`;
  run.readers.push(startReader({ url: proxy.wsUrl, topic, file: readerFile, deliveries }));
  const acked = (): number => run.loads.reduce((s, l) => s + l.acked.size, 0);

  const seed = Date.now();
  let rand = seed;
  const next = (): number => (rand = (rand * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  for (let round = 0; round < o.rounds; round++) {
    // A random moment: after a random number of further acks, so the kill lands mid-load.
    const target = acked() + 1 + Math.floor(next() * 400);
    await waitFor(() => acked() >= target, 60_000, `round ${round} (seed ${seed}): ${target} acks before the kill`);
    await run.hub!.kill();
    run.hub = await o.restart();
    proxy.retarget(run.hub.port);
    if (round === Math.floor(o.rounds / 2)) {
      // The reader goes away and comes back: it resumes from the positions it persisted.
      await run.readers[0].close();
      run.readers[0] = startReader({ url: proxy.wsUrl, topic, file: readerFile, deliveries });
    }
  }

  for (const l of run.loads) await l.finish(60_000);
  const log = await readLog(run.hub!.url, topic, o.partitions);
  const total = log.reduce((s, p) => s + p.length, 0);
  await waitFor(() => deliveries.length >= total, 60_000, `the reader to reach ${total} records (has ${deliveries.length})`);
  if (total <= o.rounds * 100) throw new Error(`only ${total} records in the log after ${o.rounds} rounds (seed ${seed})`);
  const problems = [logProblems(log, run.loads), deliveryProblems(log, deliveries)].filter(Boolean).join('\n');
  if (problems) throw new Error(`seed ${seed}:\n${problems}`);
  return { seed, log, deliveries };
}

/** Stops what a kill-under-load run left running. */
export async function stopKillRun(run: KillRun, proxy: TcpProxy | undefined): Promise<void> {
  await run.hub?.kill();
  for (const r of run.readers) await r.close().catch(() => undefined);
  for (const l of run.loads) await l.client.close().catch(() => undefined);
  await proxy?.close();
}
