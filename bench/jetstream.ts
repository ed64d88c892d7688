/**
 * JetStream scenario: the hub's JetStream engine beside the bare `nats`
 * client on the same cluster in the same run, and beside the embedded file
 * engine. A 3-node cluster on loopback; one partition (stream) with 1 and
 * with 3 replicas. Every message is the same 100-record batch (100-byte
 * values) the other scenarios use, so the bare client publishes exactly
 * the bytes the engine stores.
 *   produce: appends with 256 in flight (the engine pipelines them; the bare
 *            client's async publish awaits PubAcks with the same window)
 *   replay:  everything from the first message (engine: LogStore.read with
 *            1 MiB reads; bare: an ordered consumer), both of the stream
 *            the engine wrote in that round
 * Replay legs: where a stream's leader (R1) or a consumer (R3: an R1
 * consumer lands on any of the three peers) sits decides a read's cost more
 * than either client does: served by the node the client is connected to,
 * nats-server spent ~20 µs per batch; one route hop away, ~45–50 µs, and the
 * read ran at half the rate. Placement is random per stream and per
 * consumer, so two sides reading streams of their own, over connections to
 * different nodes, swung a round's ratio from 65% to 114%. Both sides
 * therefore read the same stream (the engine's: its messages carry the
 * engine's headers) over the same connection, and each reads it REPLAY_READS (3) times per
 * round, taking turns (a fresh consumer each time), so a side's round is not
 * one draw of placement, and the read that finds the server's block cache
 * cold falls to each side in turn.
 * Stream leaders: a publish goes to the stream's leader, on the connected
 * node or a route hop away, so the produce legs' streams (placed apart) are
 * led by one node: the bare R1 streams are placed on the node of the
 * engine's (a server tag per node, harness/nats.ts), the R3 ones stepped
 * down until that node leads them.
 * The systems are measured in interleaved rounds (bare, checked, engine,
 * then the next round in a rotated order), each round on fresh streams,
 * and the first round is a warm-up that is thrown away: a single short
 * run of each swung the ratio by ±15% between runs, as the machine's other
 * work came and went. Each row gives the median of the measured rounds and
 * their spread; a ratio is the median of the per-round ratios (a round's
 * legs run back to back, so they share the machine's state at that time).
 * Runs alone:
 *   node --import tsx bench/jetstream.ts [--quick] [--rounds N] [--batches N]
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { connect, headers, type JetStreamManager, type NatsConnection } from 'nats';
import { encodeBatch } from '../protocol/batch.ts';
import { FileLogStore } from '../server/storage/file-log-store.ts';
import { JetStreamLogStore } from '../server/storage/jetstream/jetstream-log-store.ts';
import { streamName } from '../server/storage/jetstream/names.ts';
import type { LogStore } from '../server/storage/log-store.ts';
import { nativeCrc32c } from '../server/storage/native-crc.ts';
import { startNatsCluster } from '../harness/nats.ts';

export interface JetStreamResult {
  scenario: 'jetstream';
  system: string;
  eventsPerSec: number;
  mbPerSec: number;
  notes?: string;
}

const RECORDS = 100;
const VALUE_BYTES = 100;
const WINDOW = 256;
/** Timed reads of the whole stream per replay side per round, taking turns with the other side. */
const REPLAY_READS = 3;
/** How long a bare stream's leadership may take to land on the node leading the engine's stream. */
const LEADER_MOVE_DEADLINE_MS = 30_000;

function template(): Uint8Array {
  const records = Array.from({ length: RECORDS }, (_, i) => ({
    key: `key-${i % 10}`,
    value: new Uint8Array(VALUE_BYTES).fill(i & 0xff),
    encoding: 'bytes' as const,
    headers: [],
    timestamp: 1_700_000_000_000 + i,
  }));
  return encodeBatch({ records }, nativeCrc32c);
}

function row(system: string, batches: number, size: number, ms: number, notes: string): JetStreamResult {
  const s = ms / 1000;
  return { scenario: 'jetstream', system, eventsPerSec: (batches * RECORDS) / s, mbPerSec: (batches * size) / s / 1e6, notes };
}

/** `count` operations with at most `window` in flight; returns elapsed ms. */
async function windowed(count: number, window: number, op: (i: number) => Promise<unknown>): Promise<number> {
  const start = performance.now();
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < count) await op(next++);
  };
  await Promise.all(Array.from({ length: Math.min(window, count) }, lane));
  return performance.now() - start;
}

/**
 * An engine stamps offsets into the batch it is given, so each append needs an array of its own. The
 * embedded engine is given a fresh copy per append (as the hub gives it each frame's buffer). The
 * JetStream engine is given one of a ring of copies made before the clock starts, as the bare client
 * publishes one array without copying: appends to one partition resolve in order, so with at most
 * WINDOW in flight a copy is reused only after its append was acknowledged (and the nats client copies a
 * publish into its outbound buffer while connected).
 */
async function storeProduce(store: LogStore, topic: string, batch: Uint8Array, n: number, ring = false): Promise<number> {
  if (!ring) return windowed(n, WINDOW, () => store.append(topic, 0, batch.slice()));
  const copies = Array.from({ length: 2 * WINDOW }, () => batch.slice());
  return windowed(n, WINDOW, (i) => store.append(topic, 0, copies[i % copies.length]));
}

async function storeReplay(store: LogStore, topic: string): Promise<{ ms: number; bytes: number }> {
  const start = performance.now();
  let off = 0;
  let bytes = 0;
  const end = store.offsets(topic, 0).highWatermark;
  while (off < end) {
    const r = await store.read(topic, 0, off, 1 << 20);
    // The batches as the engine holds them: a JetStream read is one buffer per message (ReadResult.parts).
    if (r.parts) for (const part of r.parts) bytes += part.length;
    else bytes += r.bytes.length;
    off = r.nextOffset;
  }
  return { ms: performance.now() - start, bytes };
}

async function bareProduce(nc: NatsConnection, stream: string, batch: Uint8Array, n: number): Promise<number> {
  const js = nc.jetstream();
  return windowed(n, WINDOW, () => js.publish(`${stream}.x`, batch));
}

/**
 * The bare client publishing what the engine's protocol asks of JetStream: a message id (duplicate
 * detection), an offsets header, and the expected last sequence and message id (the chain that keeps
 * several hubs' appends from overlapping). The gap between this row and the plain one is JetStream's
 * cost of those checks, not the hub's.
 */
async function bareProduceChecked(nc: NatsConnection, stream: string, batch: Uint8Array, n: number): Promise<number> {
  const js = nc.jetstream();
  let next = 0;
  const start = performance.now();
  const lane = async (): Promise<void> => {
    while (next < n) {
      const i = next++;
      const h = headers();
      h.set('Trib-Off', `${i * RECORDS} ${RECORDS} 1700000000000`);
      await js.publish(`${stream}.x`, batch, { msgID: `m${i}`, headers: h, expect: { lastSequence: i, ...(i > 0 ? { lastMsgID: `m${i - 1}` } : {}) } });
    }
  };
  await Promise.all(Array.from({ length: Math.min(WINDOW, n) }, lane));
  return performance.now() - start;
}

async function bareReplay(nc: NatsConnection, stream: string, n: number): Promise<number> {
  const js = nc.jetstream();
  const start = performance.now();
  const c = await js.consumers.get(stream, { opt_start_seq: 1 });
  const iter = await c.consume({ max_messages: 512 });
  let seen = 0;
  for await (const m of iter) {
    if (++seen >= n || m.seq >= n) break;
  }
  iter.stop();
  return performance.now() - start;
}

async function leaderOf(jsm: JetStreamManager, stream: string): Promise<string> {
  const leader = (await jsm.streams.info(stream)).cluster?.leader;
  if (!leader) throw new Error(`stream ${stream} has no leader`);
  return leader;
}

/** Steps the stream's leader down until `to` leads it (an R3 stream; each step-down elects one of the others). */
async function moveLeader(nc: NatsConnection, jsm: JetStreamManager, stream: string, to: string): Promise<void> {
  const deadline = Date.now() + LEADER_MOVE_DEADLINE_MS;
  for (;;) {
    const leader = (await jsm.streams.info(stream)).cluster?.leader;
    if (leader === to) return;
    if (Date.now() > deadline) throw new Error(`stream ${stream}: led by ${leader}, not ${to}, after ${LEADER_MOVE_DEADLINE_MS} ms`);
    if (leader) await nc.request(`$JS.API.STREAM.LEADER.STEPDOWN.${stream}`, undefined, { timeout: 5000 }).catch(() => undefined);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

interface Sample {
  /** events/s of each measured round, in round order. */
  rates: number[];
  /** CPU time of this process (user + system, all threads) per batch in each round, µs: steadier than a rate on a shared machine. */
  cpu: number[];
}

function median(xs: number[]): number {
  const a = [...xs].sort((x, y) => x - y);
  const m = a.length >> 1;
  return a.length % 2 ? a[m] : (a[m - 1] + a[m]) / 2;
}

const pct = (x: number): string => `${(100 * x).toFixed(0)}%`;

/** Median of the per-round ratios a/b, with their range. */
function ratio(a: Sample, b: Sample): { median: number; text: string } {
  const rs = a.rates.map((x, i) => x / b.rates[i]);
  const m = median(rs);
  return { median: m, text: `${pct(m)} (rounds ${pct(Math.min(...rs))}–${pct(Math.max(...rs))})` };
}

function sampleRow(system: string, s: Sample, size: number, notes: string): JetStreamResult & { spread: string; rounds: number; cpuUsPerBatch: number } {
  const eps = median(s.rates);
  const lo = Math.min(...s.rates);
  const hi = Math.max(...s.rates);
  const spread = `${Math.round(lo).toLocaleString('en')}–${Math.round(hi).toLocaleString('en')} events/s`;
  const cpuUsPerBatch = median(s.cpu);
  return {
    scenario: 'jetstream',
    system,
    eventsPerSec: eps,
    mbPerSec: (eps / RECORDS) * (size / 1e6),
    notes: `median of ${s.rates.length} rounds, ${spread}; bench process CPU ${cpuUsPerBatch.toFixed(0)} µs/batch; ${notes}`,
    spread,
    rounds: s.rates.length,
    cpuUsPerBatch,
  };
}

/** Runs `legs` in the given order, rotated by `round` so no system always goes first. */
async function rotated(round: number, legs: Array<() => Promise<void>>): Promise<void> {
  for (let i = 0; i < legs.length; i++) await legs[(i + round) % legs.length]();
}

const GOAL = 0.9;

export async function runJetStreamBench(opts: { quick: boolean; rounds?: number; batches?: number }): Promise<JetStreamResult[]> {
  // A round's produce leg is ~0.5–1.5 s per system here: 10,000 batches (1,000,000 records) keeps each leg
  // well above timer and scheduling noise; 1 warm-up + 6 measured rounds make a median worth reporting.
  const n = opts.batches ?? (opts.quick ? 2000 : 10_000);
  const rounds = opts.rounds ?? (opts.quick ? 3 : 7);
  const batch = template();
  const size = batch.length;
  const out: JetStreamResult[] = [];
  const cluster = await startNatsCluster({ nodes: 3 });
  // Both sides without async stack traces (a stack captured per request was ~10% of a publish), as the hub connects.
  const nc = await connect({ servers: cluster.servers.split(','), noAsyncTraces: true });
  const jsm = await nc.jetstreamManager();
  // The engine on the bench's own connection: both sides reach the cluster through the same server (see "Replay legs").
  // Its log on stderr: a refusal of three replicas at start (a node not yet a JetStream peer) and the grant or fall-back after it show there.
  const say = (level: string) => (o: object, msg?: string) => process.stderr.write(`jetstream engine ${level}: ${msg ?? ''} ${JSON.stringify(o)}\n`);
  const store = new JetStreamLogStore({ connection: nc, refreshIntervalMs: 0, log: { info: say('info'), warn: say('warn'), error: say('error') } });
  await store.open();
  try {
    for (const replicas of [1, 3]) {
      const blank = (): Sample => ({ rates: [], cpu: [] });
      const s = { bare: blank(), checked: blank(), engine: blank(), bareRead: blank(), engineRead: blank() };
      for (let k = 0; k < rounds; k++) {
        const keep = k > 0; // round 0 warms up the JIT, the connections and the servers' file stores
        const bare = `BARE_R${replicas}_${k}`;
        const checked = `BARE_CHECKED_R${replicas}_${k}`;
        const topic = `bench-r${replicas}-${k}`;
        await store.createTopic(topic, 1, { replicas });
        // The bare streams are led by the node that leads the engine's, so the three produce legs make the same
        // hops (see "Stream leaders" above).
        const leader = await leaderOf(jsm, streamName(topic, 0));
        for (const name of [bare, checked]) {
          await jsm.streams.add({ name, subjects: [`${name}.>`], num_replicas: replicas, ...(replicas === 1 ? { placement: { cluster: cluster.name, tags: [`node:${leader}`] } } : {}) });
          await moveLeader(nc, jsm, name, leader);
        }
        // Every leg runs in the warm-up round too; only its figures are dropped. A sample's round is the sum of
        // its legs in that round (a replay side reads REPLAY_READS times).
        const spent = new Map<Sample, { ms: number; cpu: number }>();
        const leg = (into: Sample, op: () => Promise<number>) => async (): Promise<void> => {
          const cpu0 = process.cpuUsage();
          const ms = await op();
          const cpu = process.cpuUsage(cpu0);
          const t = spent.get(into) ?? { ms: 0, cpu: 0 };
          spent.set(into, { ms: t.ms + ms, cpu: t.cpu + cpu.user + cpu.system });
        };
        await rotated(k, [
          leg(s.bare, () => bareProduce(nc, bare, batch, n)),
          leg(s.checked, () => bareProduceChecked(nc, checked, batch, n)),
          leg(s.engine, () => storeProduce(store, topic, batch, n, true)),
        ]);
        // Both replay sides read the engine's stream through one connection, taking turns, REPLAY_READS times
        // each: see "Replay legs" above for why.
        const engineRead = leg(s.engineRead, async () => {
          const r = await storeReplay(store, topic);
          if (r.bytes !== n * size) throw new Error(`engine replay read ${r.bytes} bytes, expected ${n * size}`);
          return r.ms;
        });
        const bareRead = leg(s.bareRead, () => bareReplay(nc, streamName(topic, 0), n));
        await rotated(
          k,
          Array.from({ length: 2 * REPLAY_READS }, (_, i) => (i % 2 ? engineRead : bareRead)),
        );
        if (keep) {
          for (const [into, t] of spent) {
            const reads = into === s.bareRead || into === s.engineRead ? REPLAY_READS : 1;
            into.rates.push((reads * n * RECORDS) / (t.ms / 1000));
            into.cpu.push(t.cpu / (reads * n));
          }
        }
        await store.deleteTopic(topic);
        await jsm.streams.delete(bare);
        await jsm.streams.delete(checked);
      }
      const { bare, checked, engine, bareRead, engineRead } = s;
      const prod = ratio(engine, bare);
      const read = ratio(engineRead, bareRead);
      out.push(sampleRow(`nats client R${replicas} produce`, bare, size, `js.publish of the batch bytes, ${WINDOW} in flight`));
      out.push(sampleRow(`nats client R${replicas} produce, checked`, checked, size, `as above with msg id, offsets header, expected last seq + msg id: ${ratio(checked, bare).text} of plain`));
      out.push(
        sampleRow(
          `JetStream engine R${replicas} produce`,
          engine,
          size,
          `LogStore.append, ${WINDOW} in flight; ${prod.text} of the bare client (goal ≥ ${pct(GOAL)}: ${prod.median >= GOAL ? 'met' : 'missed'}), ${ratio(engine, checked).text} of it checked`,
        ),
      );
      out.push(sampleRow(`nats client R${replicas} replay`, bareRead, size, `ordered consumer from seq 1 of the engine's stream, ${REPLAY_READS} reads per round`));
      out.push(
        sampleRow(
          `JetStream engine R${replicas} replay`,
          engineRead,
          size,
          `LogStore.read, 1 MiB reads, its parts taken unjoined; ${read.text} of the bare client (goal ≥ ${pct(GOAL)}: ${read.median >= GOAL ? 'met' : 'missed'})`,
        ),
      );
    }
  } finally {
    await store.close();
    await nc.close();
    await cluster.stop();
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tributary-bench-js-'));
  try {
    const file = new FileLogStore({ dataDir: dir, cleanupIntervalMs: 0, tailCacheBytes: 0 });
    await file.open();
    await file.createTopic('bench', 1, { fsync: 'always' });
    out.push(row('embedded engine produce', n, size, await storeProduce(file, 'bench', batch, n), `FileLogStore fsync=always, ${WINDOW} in flight; one run`));
    out.push(row('embedded engine replay', n, size, (await storeReplay(file, 'bench')).ms, 'FileLogStore.read, 1 MiB reads (page cache warm); one run'));
    await file.close();
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  return out;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const arg = (name: string): number | undefined => {
    const i = process.argv.indexOf(name);
    return i > 0 ? Number(process.argv[i + 1]) : undefined;
  };
  const results = await runJetStreamBench({ quick: process.argv.includes('--quick'), rounds: arg('--rounds'), batches: arg('--batches') });
  console.table(results.map((x) => ({ system: x.system, 'events/s': Math.round(x.eventsPerSec).toLocaleString('en'), 'MB/s': x.mbPerSec.toFixed(1), notes: x.notes ?? '' })));
  process.exit(0);
}
