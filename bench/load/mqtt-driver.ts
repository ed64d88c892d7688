/**
 * Load against Mosquitto through `mqtt` (MQTT 3.1.1, QoS 1: a PUBACK per
 * message). MQTT has no batches: a "batch" is 100 publishes whose PUBACKs are
 * awaited together. MQTT cannot replay a topic's history (only the last
 * retained message), so there is no replay here.
 */
import { connectAsync, type MqttClient } from 'mqtt';
import { LatencyRecorder, makeValue, now, openMany, pace, readStamp, stampValue, waitUntil, errorText } from './common.ts';
import type { ConnectionsParams, FanoutParams, LatencyParams, LoadResult, ProduceParams, Target } from './job.ts';
import { readServerRss } from './rss.ts';

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
  let acked = 0;
  let sent = 0;
  let errors = 0;
  const notes: string[] = [];
  let lastAckAt = 0;
  const clients = await Promise.all(Array.from({ length: p.producers }, () => conn(t)));
  const countFrom = now() + p.warmupMs;
  const stopAt = countFrom + p.durationMs;
  const runProducer = async (c: MqttClient): Promise<void> => {
    const lane = async (): Promise<void> => {
      while (now() < stopAt && sent < p.maxEvents) {
        sent += p.batch;
        const acks = new Array<Promise<unknown>>(p.batch);
        for (let i = 0; i < p.batch; i++) acks[i] = c.publishAsync(topicOf(t), value, { qos: 1 });
        try {
          await Promise.all(acks);
          const at = now();
          if (at >= countFrom) {
            acked += p.batch;
            lastAckAt = at;
          }
        } catch (e) {
          if (errors++ === 0) notes.push(`first publish error: ${errorText(e)}`);
        }
      }
    };
    await Promise.all(Array.from({ length: p.window }, lane));
  };
  await Promise.all(clients.map(runProducer));
  const rssBytes = readServerRss(t);
  await Promise.all(clients.map((c) => c.endAsync(true)));
  return { events: acked, bytes: acked * p.valueBytes, elapsedMs: (lastAckAt || now()) - countFrom, errors, notes, rssBytes };
}

async function liveRun(t: Target, p: LatencyParams, subscribers: number): Promise<LoadResult> {
  const rec = new LatencyRecorder();
  let measuring = false;
  let delivered = 0;
  const subs = await openMany(subscribers, 50, async () => {
    const c = await conn(t);
    c.on('message', (_topic, payload) => {
      if (!measuring) return;
      delivered++;
      rec.record(now() - readStamp(payload));
    });
    await c.subscribeAsync(topicOf(t), { qos: 1 });
    return c;
  });
  const producer = await conn(t);
  let errors = 0;
  const value = makeValue(p.valueBytes);
  const tickMs = subscribers > 1 ? 10 : 1;
  const send = (n: number): void => {
    for (let i = 0; i < n; i++) {
      stampValue(value);
      producer.publish(topicOf(t), value, { qos: 1 }, (err) => {
        if (err) errors++;
      });
    }
  };
  await pace(p.rate, p.warmupMs, tickMs, send);
  measuring = true;
  const start = now();
  const sent = await pace(p.rate, p.durationMs, tickMs, send);
  const expected = sent * subscribers;
  await waitUntil(() => delivered >= expected, 5_000, 10);
  const elapsedMs = now() - start;
  measuring = false;
  const rssBytes = readServerRss(t);
  await Promise.all([...subs, producer].map((c) => c.endAsync(true)));
  const notes = delivered < expected ? [`delivered ${delivered} of ${expected} expected`] : [];
  return { events: delivered, bytes: delivered * p.valueBytes, elapsedMs, latency: rec.percentiles(), errors, notes, rssBytes };
}

export const latency = (t: Target, p: LatencyParams): Promise<LoadResult> => liveRun(t, p, 1);
export const fanout = (t: Target, p: FanoutParams): Promise<LoadResult> => liveRun(t, p, p.subscribers);

export async function connections(t: Target, p: ConnectionsParams): Promise<LoadResult> {
  const base = readServerRss(t);
  const start = now();
  let failed = 0;
  let firstError = '';
  const conns = await openMany(p.count, p.concurrency, async () => {
    try {
      return await conn(t);
    } catch (e) {
      if (failed++ === 0) firstError = errorText(e);
      return null;
    }
  });
  const elapsedMs = now() - start;
  await new Promise((r) => setTimeout(r, p.settleMs));
  const rssBytes = readServerRss(t);
  const held = conns.filter((c) => c !== null);
  for (const c of held) c.end(true);
  return { events: held.length, bytes: 0, elapsedMs, errors: failed, notes: failed ? [`${failed} connections failed (${firstError})`] : [], rssBytes, rssBaseBytes: base };
}
