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
 *            1 MiB reads; bare: an ordered consumer)
 * Runs alone:
 *   node --import tsx bench/jetstream.ts [--quick]
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { connect, headers, type NatsConnection } from 'nats';
import { encodeBatch } from '../protocol/batch.ts';
import { FileLogStore } from '../server/storage/file-log-store.ts';
import { JetStreamLogStore } from '../server/storage/jetstream/jetstream-log-store.ts';
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

async function storeProduce(store: LogStore, topic: string, batch: Uint8Array, n: number): Promise<number> {
  return windowed(n, WINDOW, () => store.append(topic, 0, batch.slice()));
}

async function storeReplay(store: LogStore, topic: string): Promise<{ ms: number; bytes: number }> {
  const start = performance.now();
  let off = 0;
  let bytes = 0;
  const end = store.offsets(topic, 0).highWatermark;
  while (off < end) {
    const r = await store.read(topic, 0, off, 1 << 20);
    bytes += r.bytes.length;
    off = r.nextOffset;
  }
  return { ms: performance.now() - start, bytes };
}

async function bareProduce(nc: NatsConnection, stream: string, replicas: number, batch: Uint8Array, n: number): Promise<number> {
  const jsm = await nc.jetstreamManager();
  await jsm.streams.add({ name: stream, subjects: [`${stream}.>`], num_replicas: replicas });
  const js = nc.jetstream();
  return windowed(n, WINDOW, () => js.publish(`${stream}.x`, batch));
}

/**
 * The bare client publishing what the engine's protocol asks of JetStream: a message id (duplicate
 * detection), an offsets header, and the expected last sequence and message id (the chain that keeps
 * several hubs' appends from overlapping). The gap between this row and the plain one is JetStream's
 * cost of those checks, not the hub's.
 */
async function bareProduceChecked(nc: NatsConnection, stream: string, replicas: number, batch: Uint8Array, n: number): Promise<number> {
  const jsm = await nc.jetstreamManager();
  await jsm.streams.add({ name: stream, subjects: [`${stream}.>`], num_replicas: replicas });
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

export async function runJetStreamBench(opts: { quick: boolean }): Promise<JetStreamResult[]> {
  const n = opts.quick ? 2000 : 10_000;
  const batch = template();
  const size = batch.length;
  const out: JetStreamResult[] = [];
  const cluster = await startNatsCluster({ nodes: 3 });
  // Both sides without async stack traces (a stack captured per request was ~10% of a publish), as the hub connects.
  const nc = await connect({ servers: cluster.servers.split(','), noAsyncTraces: true });
  const store = new JetStreamLogStore({ servers: cluster.servers.split(','), refreshIntervalMs: 0 });
  await store.open();
  try {
    for (const replicas of [1, 3]) {
      const bareMs = await bareProduce(nc, `BARE_R${replicas}`, replicas, batch, n);
      out.push(row(`nats client R${replicas} produce`, n, size, bareMs, `js.publish of the batch bytes, ${WINDOW} in flight`));
      const checkedMs = await bareProduceChecked(nc, `BARE_CHECKED_R${replicas}`, replicas, batch, n);
      out.push(
        row(`nats client R${replicas} produce, checked`, n, size, checkedMs, `as above with msg id, offsets header, expected last seq + msg id: ${((100 * bareMs) / checkedMs).toFixed(0)}% of plain`),
      );
      const topic = `bench-r${replicas}`;
      await store.createTopic(topic, 1, { replicas });
      const engMs = await storeProduce(store, topic, batch, n);
      out.push(
        row(
          `JetStream engine R${replicas} produce`,
          n,
          size,
          engMs,
          `LogStore.append, ${WINDOW} in flight; ${((100 * bareMs) / engMs).toFixed(0)}% of the bare client, ${((100 * checkedMs) / engMs).toFixed(0)}% of it checked`,
        ),
      );
      const bareRead = await bareReplay(nc, `BARE_R${replicas}`, n);
      out.push(row(`nats client R${replicas} replay`, n, size, bareRead, 'ordered consumer from seq 1'));
      const engRead = await storeReplay(store, topic);
      out.push(row(`JetStream engine R${replicas} replay`, n, size, engRead.ms, `LogStore.read, 1 MiB reads; ${((100 * bareRead) / engRead.ms).toFixed(0)}% of the bare client`));
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
    out.push(row('embedded engine produce', n, size, await storeProduce(file, 'bench', batch, n), `FileLogStore fsync=always, ${WINDOW} in flight`));
    out.push(row('embedded engine replay', n, size, (await storeReplay(file, 'bench')).ms, 'FileLogStore.read, 1 MiB reads (page cache warm)'));
    await file.close();
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  return out;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const results = await runJetStreamBench({ quick: process.argv.includes('--quick') });
  console.table(results.map((x) => ({ system: x.system, 'events/s': Math.round(x.eventsPerSec).toLocaleString('en'), 'MB/s': x.mbPerSec.toFixed(1), notes: x.notes ?? '' })));
  process.exit(0);
}
