/**
 * Load against Mosquitto through `mqtt` (MQTT 3.1.1, QoS 1: a PUBACK per
 * message). MQTT has no batches: a "batch" is 100 publishes whose PUBACKs are
 * awaited together. MQTT cannot replay a topic's history (only the last
 * retained message), so there is no replay here.
 */
import { connectAsync, type MqttClient } from 'mqtt';
import { makeValue, openMany, readStamp, stampValue } from './common.ts';
import type { ConnectionsParams, FanoutParams, LatencyParams, LoadResult, ProduceParams, Target } from './job.ts';
import { readServerRss } from './rss.ts';
import { holdConnections, LiveRun, ProduceLanes } from './scenario-runs.ts';

const topicOf = (t: Target): string => `bench/${t.topic}`;
let clientSeq = 0;

function conn(t: Target): Promise<MqttClient> {
  return connectAsync(`mqtt://127.0.0.1:${t.port}`, {
    clientId: `bench-${process.pid}-${clientSeq++}`,
    clean: true,
    reconnectPeriod: 0,
    connectTimeout: 10_000,
    keepalive: 300,
  });
}

export async function produce(t: Target, p: ProduceParams): Promise<LoadResult> {
  const value = makeValue(p.valueBytes);
  const clients = await Promise.all(Array.from({ length: p.producers }, () => conn(t)));
  const run = new ProduceLanes(p, 'publish');
  await run.drive(clients, (c) => {
    const acks = new Array<Promise<unknown>>(p.batch);
    for (let i = 0; i < p.batch; i++) acks[i] = c.publishAsync(topicOf(t), value, { qos: 1 });
    return Promise.all(acks);
  });
  const rssBytes = readServerRss(t);
  await Promise.all(clients.map((c) => c.endAsync(true)));
  return run.result(rssBytes);
}

async function liveRun(t: Target, p: LatencyParams, subscribers: number): Promise<LoadResult> {
  const run = new LiveRun(t, p, subscribers);
  const subs = await openMany(subscribers, 50, async () => {
    const c = await conn(t);
    c.on('message', (_topic, payload) => run.arrived(readStamp(payload)));
    await c.subscribeAsync(topicOf(t), { qos: 1 });
    return c;
  });
  const producer = await conn(t);
  const value = makeValue(p.valueBytes);
  await run.measure((n) => {
    for (let i = 0; i < n; i++) {
      stampValue(value);
      producer.publish(topicOf(t), value, { qos: 1 }, (err) => {
        if (err) run.errors++;
      });
    }
  });
  await Promise.all([...subs, producer].map((c) => c.endAsync(true)));
  return run.result();
}

export const latency = (t: Target, p: LatencyParams): Promise<LoadResult> => liveRun(t, p, 1);
export const fanout = (t: Target, p: FanoutParams): Promise<LoadResult> => liveRun(t, p, p.subscribers);

export const connections = (t: Target, p: ConnectionsParams): Promise<LoadResult> =>
  holdConnections(
    t,
    p,
    () => conn(t),
    (c) => c.end(true),
  );
