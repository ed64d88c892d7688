/**
 * Load against Redis Streams through `ioredis`: XADD pipelined 100 at a time
 * (one pipeline = one batch, acked when every reply is back), XRANGE pages
 * for replay, XREAD BLOCK loops for live delivery (one connection each).
 * Durability is the server's AOF setting (always / everysec).
 */
import { Redis } from 'ioredis';
import { makeValue, now, openMany, readStamp, stampValue } from './common.ts';
import type { ConnectionsParams, FanoutParams, LatencyParams, LoadResult, ProduceParams, ReplayParams, Target } from './job.ts';
import { readServerRss } from './rss.ts';
import { holdConnections, LiveRun, ProduceLanes } from './scenario-runs.ts';

const XRANGE_PAGE = 1_000;
const FIELD = 'v';

function client(t: Target): Redis {
  return new Redis({ host: '127.0.0.1', port: t.port, maxRetriesPerRequest: 0, retryStrategy: () => null, enableOfflineQueue: true });
}

export async function produce(t: Target, p: ProduceParams): Promise<LoadResult> {
  const value = makeValue(p.valueBytes);
  const clients = Array.from({ length: p.producers }, () => client(t));
  await Promise.all(clients.map((c) => c.ping()));
  const run = new ProduceLanes(p, 'XADD');
  await run.drive(clients, async (r) => {
    const pipe = r.pipeline();
    for (let i = 0; i < p.batch; i++) pipe.xadd(t.topic, '*', FIELD, value);
    const replies = await pipe.exec();
    const failed = replies?.find(([err]) => err);
    if (failed) throw failed[0];
  });
  const rssBytes = readServerRss(t);
  for (const c of clients) c.disconnect();
  return run.result(rssBytes);
}

type Entry = [id: Buffer, fields: Buffer[]];

export async function replay(t: Target, p: ReplayParams): Promise<LoadResult> {
  const loaded = await produce(t, { producers: 1, batch: p.batch, valueBytes: p.valueBytes, form: 'records', window: 16, durationMs: p.timeoutMs, warmupMs: 0, maxEvents: p.events });
  if (loaded.events < p.events) throw new Error(`preload stored only ${loaded.events} of ${p.events} events`);
  const r = client(t);
  await r.ping();
  let read = 0;
  let from: string = '-';
  const start = now();
  const deadline = start + p.timeoutMs;
  while (read < p.events && now() < deadline) {
    const page = (await r.xrangeBuffer(t.topic, from, '+', 'COUNT', XRANGE_PAGE)) as Entry[];
    if (page.length === 0) break;
    read += page.length;
    from = `(${page[page.length - 1][0].toString()}`;
  }
  const elapsedMs = now() - start;
  r.disconnect();
  const n = Math.min(read, p.events);
  return { events: n, bytes: n * p.valueBytes, elapsedMs, errors: 0, notes: read < p.events ? [`read only ${read} events`] : [] };
}

/**
 * The entries of a one-stream XREAD reply: RESP2 answers [[key, entries]];
 * ioredis' default RESP3 with legacy shapes flattens the map to [key, entries].
 */
function streamEntries(res: unknown): Entry[] {
  const a = res as unknown[];
  if (Buffer.isBuffer(a[0])) return a[1] as Entry[];
  return (a as Array<[Buffer, Entry[]]>)[0][1];
}

async function liveRun(t: Target, p: LatencyParams, subscribers: number): Promise<LoadResult> {
  const run = new LiveRun(t, p, subscribers);
  let running = true;
  const readers = await openMany(subscribers, 50, async () => {
    const r = client(t);
    await r.ping();
    return r;
  });
  // Start each reader after the stream's current end, then loop XREAD BLOCK from the last id seen.
  const loops = readers.map(async (r) => {
    let last = '$';
    while (running) {
      let res: unknown;
      try {
        res = await r.callBuffer('XREAD', 'BLOCK', '1000', 'STREAMS', t.topic, last);
      } catch {
        return;
      }
      if (!res) continue;
      const entries = streamEntries(res);
      if (entries.length === 0) continue;
      const at = now();
      for (const [, fields] of entries) run.arrived(readStamp(fields[1]), 1, at);
      last = entries[entries.length - 1][0].toString();
    }
  });
  await new Promise((r) => setTimeout(r, 200)); // the readers' first XREAD is in
  const producer = client(t);
  await producer.ping();
  const value = makeValue(p.valueBytes);
  await run.measure((n) => {
    stampValue(value);
    const pipe = producer.pipeline();
    for (let i = 0; i < n; i++) pipe.xadd(t.topic, '*', FIELD, value);
    pipe.exec().catch(() => run.errors++);
  });
  running = false;
  for (const r of [...readers, producer]) r.disconnect();
  await Promise.race([Promise.all(loops), new Promise((r) => setTimeout(r, 2_000))]);
  return run.result();
}

export const latency = (t: Target, p: LatencyParams): Promise<LoadResult> => liveRun(t, p, 1);
export const fanout = (t: Target, p: FanoutParams): Promise<LoadResult> => liveRun(t, p, p.subscribers);

export async function connections(t: Target, p: ConnectionsParams): Promise<LoadResult> {
  const open = async (): Promise<Redis> => {
    const r = client(t);
    try {
      await r.ping();
      return r;
    } catch (e) {
      r.disconnect();
      throw e;
    }
  };
  return holdConnections(t, p, open, (r) => r.disconnect());
}
