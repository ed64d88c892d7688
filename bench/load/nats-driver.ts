/**
 * Load against NATS JetStream through the `nats` client: a file-storage
 * stream, async publish with a PubAck per message (JetStream 2.9 has no batch
 * publish: a "batch" is 100 publishes whose acks are awaited together),
 * pull consumers without acks for replay and live delivery.
 */
import { AckPolicy, connect, DeliverPolicy, StorageType, type Consumer, type NatsConnection } from 'nats';
import { makeValue, now, openMany, readStamp, stampValue, waitUntil } from './common.ts';
import type { ConnectionsParams, FanoutParams, LatencyParams, LoadResult, ProduceParams, ReplayParams, Target } from './job.ts';
import { readServerRss } from './rss.ts';
import { holdConnections, LiveRun, ProduceLanes } from './scenario-runs.ts';

const STREAM = 'BENCH';
const CONSUME_MAX_MESSAGES = 1_000;
const subject = (t: Target): string => `bench.${t.topic}`;

async function conn(t: Target): Promise<NatsConnection> {
  return connect({ servers: `127.0.0.1:${t.port}`, maxReconnectAttempts: 0, pingInterval: 120_000 });
}

async function ensureStream(nc: NatsConnection): Promise<void> {
  const jsm = await nc.jetstreamManager();
  try {
    await jsm.streams.info(STREAM);
  } catch {
    await jsm.streams.add({ name: STREAM, subjects: ['bench.>'], storage: StorageType.File });
  }
}

let consumerSeq = 0;

/**
 * A pull consumer without acks, created through the JetStream management API.
 * (The client's "ordered consumer" uses a consumer-create API that
 * nats-server 2.9 lacks: the client then spins and blocks its event loop.)
 */
async function pullConsumer(nc: NatsConnection, deliver: DeliverPolicy): Promise<Consumer> {
  const jsm = await nc.jetstreamManager();
  const name = `bench-${process.pid}-${consumerSeq++}`;
  await jsm.consumers.add(STREAM, { durable_name: name, ack_policy: AckPolicy.None, deliver_policy: deliver });
  return nc.jetstream().consumers.get(STREAM, name);
}

export async function produce(t: Target, p: ProduceParams): Promise<LoadResult> {
  const admin = await conn(t);
  await ensureStream(admin);
  const value = makeValue(p.valueBytes);
  const run = new ProduceLanes(p, 'publish');
  const clients = await Promise.all(Array.from({ length: p.producers }, () => conn(t)));
  await run.drive(
    clients.map((nc) => nc.jetstream()),
    (js) => {
      const acks = new Array<Promise<unknown>>(p.batch);
      for (let i = 0; i < p.batch; i++) acks[i] = js.publish(subject(t), value);
      return Promise.all(acks);
    },
  );
  const rssBytes = readServerRss(t);
  for (const nc of [admin, ...clients]) await nc.close();
  return run.result(rssBytes);
}

export async function replay(t: Target, p: ReplayParams): Promise<LoadResult> {
  const loaded = await produce(t, { producers: 1, batch: p.batch, valueBytes: p.valueBytes, form: 'records', window: 1, durationMs: p.timeoutMs, warmupMs: 0, maxEvents: p.events });
  if (loaded.events < p.events) throw new Error(`preload stored only ${loaded.events} of ${p.events} events`);
  const nc = await conn(t);
  const consumer = await pullConsumer(nc, DeliverPolicy.All);
  let read = 0;
  const start = now();
  let doneAt = 0;
  const messages = await consumer.consume({
    max_messages: CONSUME_MAX_MESSAGES,
    callback: () => {
      if (++read === p.events) doneAt = now();
    },
  });
  await waitUntil(() => read >= p.events, p.timeoutMs, 2);
  const end = doneAt || now();
  await messages.close();
  await nc.close();
  const n = Math.min(read, p.events);
  return { events: n, bytes: n * p.valueBytes, elapsedMs: end - start, errors: 0, notes: read < p.events ? [`timed out after ${read} events`] : [] };
}

async function liveRun(t: Target, p: LatencyParams, subscribers: number): Promise<LoadResult> {
  const producerConn = await conn(t);
  await ensureStream(producerConn);
  const js = producerConn.jetstream();
  const run = new LiveRun(t, p, subscribers);
  const subs = await openMany(subscribers, 20, async () => {
    const nc = await conn(t);
    const c = await pullConsumer(nc, DeliverPolicy.New);
    const messages = await c.consume({ max_messages: CONSUME_MAX_MESSAGES, callback: (m) => run.arrived(readStamp(m.data)) });
    return { nc, messages };
  });
  const value = makeValue(p.valueBytes);
  await run.measure((n) => {
    for (let i = 0; i < n; i++) {
      stampValue(value);
      js.publish(subject(t), value).catch(() => run.errors++);
    }
  });
  for (const s of subs) {
    await s.messages.close();
    await s.nc.close();
  }
  await producerConn.close();
  return run.result();
}

export const latency = (t: Target, p: LatencyParams): Promise<LoadResult> => liveRun(t, p, 1);
export const fanout = (t: Target, p: FanoutParams): Promise<LoadResult> => liveRun(t, p, p.subscribers);

export const connections = (t: Target, p: ConnectionsParams): Promise<LoadResult> =>
  holdConnections(
    t,
    p,
    () => conn(t),
    (c) => void c.close(),
  );
