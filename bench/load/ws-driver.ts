/**
 * Load over the hub's WebSocket protocol (CBOR frames on /v1/ws). Drives the
 * hub, and for `produce`/`connections` also the uWS echo and the durable
 * append server, which answer the same produce frames.
 */
import { decodeCbor, encodeCbor } from '../../protocol/codec.ts';
import { batchPositions, encodeBatch, readProducerIdLength, readRecordCount, BATCH_HEADER_BYTES } from '../../protocol/batch.ts';
import { nativeCrc32c } from '../../server/storage/native-crc.ts';
import { readUvarint, type VarintRead } from '../../protocol/varint.ts';
import { makeValue, now, openMany, readStamp, stampValue, waitUntil } from './common.ts';
import type { ConnectionsParams, FanoutParams, LatencyParams, LoadResult, ProduceParams, ReplayParams, Target } from './job.ts';
import { connectWs, FIRST_PATCHABLE_ID, ProduceTemplate, type WsConn } from './ws-client.ts';
import { readServerRss } from './rss.ts';
import { mintToken } from './token.ts';
import { holdConnections, LiveRun } from './scenario-runs.ts';

/** Replies this short are decoded (acks, errors); longer ones are echoes of the frame and count as acks. */
const DECODE_REPLY_MAX_BYTES = 512;
const SUBSCRIBE_CREDIT_BYTES = 16 * 1024 * 1024;
const DRAIN_TIMEOUT_MS = 15_000;

const url = (t: Target): string => `ws://127.0.0.1:${t.port}${t.path ?? '/v1/ws'}`;
const protocols = (t: Target): string[] => (t.hubProtocol ? ['tributary.v1'] : []);

let nextId = 1;

async function open(t: Target, onMessage: (b: Buffer) => void, localAddress?: string): Promise<WsConn> {
  const c = await connectWs(url(t), onMessage, { protocols: protocols(t), localAddress });
  const hello: Record<string, unknown> = { t: 'hello', id: nextId++, v: 1, client: 'bench' };
  if (t.authSecret) hello.token = await mintToken(t.authSecret, `bench-${process.pid}-${nextId}`, t.topic);
  const reply = await c.request(hello);
  if (reply.length <= DECODE_REPLY_MAX_BYTES) {
    const f = decodeCbor(reply) as { t?: string; message?: string };
    if (f.t === 'error') throw new Error(`hello refused: ${f.message}`);
  }
  return c;
}

function replyFailed(b: Buffer): string | null {
  if (b.length > DECODE_REPLY_MAX_BYTES) return null;
  const f = decodeCbor(b) as { t?: string; code?: string; message?: string };
  return f.t === 'error' ? `${f.code}: ${f.message}` : null;
}

/** The produce frame's body: 100 wire records, or the same records as one encoded batch for partition 0. */
function produceBody(topic: string, p: ProduceParams): Record<string, unknown> {
  if (p.form === 'records') return { topic, records: Array.from({ length: p.batch }, () => ({ v: makeValue(p.valueBytes) })) };
  const records = Array.from({ length: p.batch }, () => ({ key: null, value: makeValue(p.valueBytes), encoding: 'bytes' as const, headers: [], timestamp: Date.now() }));
  return { topic, batches: [{ p: 0, b: encodeBatch({ records }, nativeCrc32c) }] };
}

export async function produce(t: Target, p: ProduceParams): Promise<LoadResult> {
  const template = new ProduceTemplate(produceBody(t.topic, p));
  const notes: string[] = [];
  let acked = 0;
  let inFlight = 0;
  let errors = 0;
  let stopAt = Infinity;
  let countFrom = Infinity;
  let sentEvents = 0;
  let lastAckAt = 0;
  const conns: WsConn[] = [];
  const sendNext: Array<() => void> = [];
  for (let i = 0; i < p.producers; i++) {
    const pool = Array.from({ length: p.window * 2 }, (_, k) => template.withId(FIRST_PATCHABLE_ID + k));
    let id = FIRST_PATCHABLE_ID;
    let conn: WsConn | undefined;
    const send = (): void => {
      if (now() >= stopAt || sentEvents >= p.maxEvents || !conn) return;
      const buf = pool[id % pool.length];
      ProduceTemplate.setId(buf, template, id++);
      inFlight++;
      sentEvents += p.batch;
      conn.send(buf);
    };
    conn = await open(t, (b) => {
      inFlight--;
      const failed = replyFailed(b);
      if (failed) {
        if (errors++ === 0) notes.push(`first error reply: ${failed}`);
      } else {
        const at = now();
        if (at >= countFrom) {
          acked += p.batch;
          lastAckAt = at;
        }
      }
      send();
    });
    conns.push(conn);
    sendNext.push(send);
  }
  countFrom = now() + p.warmupMs;
  stopAt = countFrom + p.durationMs;
  for (const send of sendNext) for (let k = 0; k < p.window; k++) send();
  await waitUntil(() => now() >= stopAt || sentEvents >= p.maxEvents, p.warmupMs + p.durationMs + 1_000, 20);
  const drained = await waitUntil(() => inFlight === 0, DRAIN_TIMEOUT_MS, 2);
  if (!drained) notes.push(`${inFlight} requests still unanswered ${DRAIN_TIMEOUT_MS} ms after the run`);
  const rssBytes = readServerRss(t);
  for (const c of conns) c.close();
  return { events: acked, bytes: acked * p.valueBytes, elapsedMs: (lastAckAt || now()) - countFrom, errors, notes, rssBytes };
}

/** Walks the batches of a records frame: calls `each(batchPos, recordCount)`. */
function forEachBatch(b: Uint8Array, each: (pos: number, count: number) => void): void {
  for (const pos of batchPositions(b)) each(pos, readRecordCount(b, pos));
}

const vr: VarintRead = { value: 0, pos: 0 };
/** The send time stamped into the first record's value, without decoding the batch. */
function firstRecordStamp(b: Uint8Array, pos: number): number {
  let p = pos + BATCH_HEADER_BYTES + readProducerIdLength(b, pos);
  const end = b.length;
  readUvarint(b, p, end, vr); // record length
  p = vr.pos;
  const attr = b[p++];
  readUvarint(b, p, end, vr); // offset delta
  readUvarint(b, vr.pos, end, vr); // sequence delta
  readUvarint(b, vr.pos, end, vr); // timestamp delta
  p = vr.pos;
  if ((attr >> 3) & 3) {
    readUvarint(b, p, end, vr);
    p = vr.pos + vr.value;
  }
  readUvarint(b, p, end, vr); // value length
  return readStamp(b, vr.pos);
}

interface Subscriber {
  conn: WsConn;
  delivered: number;
}

/** Subscribes one connection; `onBatch` sees each stored batch delivered. */
async function subscribe(t: Target, from: unknown, onBatch: (b: Uint8Array, pos: number, count: number) => void): Promise<Subscriber> {
  const s: Subscriber = { conn: undefined as unknown as WsConn, delivered: 0 };
  let sub = -1;
  let unreturned = 0;
  s.conn = await open(t, (data) => {
    const f = decodeCbor(data) as { t?: string; sub?: number; b?: Uint8Array; message?: string };
    if (f.t !== 'records' || !f.b) return;
    forEachBatch(f.b, (pos, count) => {
      s.delivered += count;
      onBatch(f.b!, pos, count);
    });
    // Give credit back in halves of the window, as a client with a window would, not per frame.
    unreturned += f.b.length;
    if (sub >= 0 && unreturned >= SUBSCRIBE_CREDIT_BYTES / 2) {
      s.conn.send(encodeCbor({ t: 'credit', sub, bytes: unreturned }));
      unreturned = 0;
    }
  });
  const reply = decodeCbor(await s.conn.request({ t: 'subscribe', id: nextId++, topic: t.topic, from, credit: SUBSCRIBE_CREDIT_BYTES })) as {
    t?: string;
    sub?: number;
    message?: string;
  };
  if (reply.t !== 'ok' || typeof reply.sub !== 'number') throw new Error(`subscribe refused: ${reply.message ?? JSON.stringify(reply)}`);
  sub = reply.sub;
  return s;
}

export async function replay(t: Target, p: ReplayParams): Promise<LoadResult> {
  if (!t.hubProtocol) throw new Error('replay needs the hub protocol');
  const loaded = await produce(t, { producers: 1, batch: p.batch, valueBytes: p.valueBytes, form: 'records', window: 32, durationMs: p.timeoutMs, warmupMs: 0, maxEvents: p.events });
  if (loaded.events < p.events) throw new Error(`preload stored only ${loaded.events} of ${p.events} events`);
  let start = 0;
  let doneAt = 0;
  const s = await subscribe(t, 'earliest', () => {
    if (doneAt === 0 && s.delivered >= p.events) doneAt = now();
  });
  start = now();
  // The subscribe reply may come after the first records: count from the subscribe request.
  await waitUntil(() => s.delivered >= p.events, p.timeoutMs, 2);
  const end = doneAt || now();
  s.conn.close();
  const notes = s.delivered < p.events ? [`timed out after ${s.delivered} events`] : [];
  return { events: Math.min(s.delivered, p.events), bytes: Math.min(s.delivered, p.events) * p.valueBytes, elapsedMs: end - start, errors: 0, notes };
}

/**
 * The live runs' produce form: 'batch' (default) is what the web client sends
 * (web-client/outbox-drain.ts: a record batch with its producer id and
 * sequence); 'records' is the older wire-records form, which the hub decodes
 * and re-encodes (BENCH_LIVE_FORM=records, to compare).
 */
const LIVE_FORM = process.env.BENCH_LIVE_FORM === 'records' ? 'records' : 'batch';
const LIVE_PRODUCER_ID = 'bench-live';

/** One producer paced at `rate`, `subscribers` live subscribers; latency per delivered event. */
async function liveRun(t: Target, p: LatencyParams, subscribers: number): Promise<LoadResult> {
  if (!t.hubProtocol) throw new Error('live delivery needs the hub protocol');
  const run = new LiveRun(t, p, subscribers);
  const subs = await openMany(subscribers, 50, () => subscribe(t, 'latest', (b, pos, count) => run.arrived(firstRecordStamp(b, pos), count)));
  const producer = await open(t, (b) => {
    if (replyFailed(b)) run.errors++;
  });
  const value = makeValue(p.valueBytes);
  let seq = 0;
  await run.measure((n) => {
    stampValue(value);
    if (LIVE_FORM === 'records') {
      const records = new Array(n);
      for (let i = 0; i < n; i++) records[i] = { v: value };
      producer.send(encodeCbor({ t: 'produce', id: nextId++, topic: t.topic, records }));
      return;
    }
    // What the web client sends: one idempotent batch it encoded itself, stored by the hub as it is.
    const records = new Array(n);
    const now = Date.now();
    for (let i = 0; i < n; i++) records[i] = { key: null, value, encoding: 'bytes' as const, headers: [], timestamp: now };
    const b = encodeBatch({ producerId: LIVE_PRODUCER_ID, baseSequence: seq, records }, nativeCrc32c);
    seq += n;
    producer.send(encodeCbor({ t: 'produce', id: nextId++, topic: t.topic, batches: [{ p: 0, b }] }));
  });
  producer.close();
  for (const s of subs) s.conn.close();
  return run.result();
}

export const latency = (t: Target, p: LatencyParams): Promise<LoadResult> => liveRun(t, p, 1);
export const fanout = (t: Target, p: FanoutParams): Promise<LoadResult> => liveRun(t, p, p.subscribers);

/** Default connections per source address: past it, 127.0.0.2, 127.0.0.3, … (see ConnectionsParams.perSourceAddress). */
const PER_SOURCE_ADDRESS = 20_000;

function sourceAddress(p: ConnectionsParams, i: number): string | undefined {
  const block = Math.floor(i / (p.perSourceAddress ?? PER_SOURCE_ADDRESS));
  return block === 0 ? undefined : `127.0.0.${1 + block}`;
}

export const connections = (t: Target, p: ConnectionsParams): Promise<LoadResult> =>
  holdConnections(
    t,
    p,
    (i) => open(t, () => {}, sourceAddress(p, i)),
    (c) => c.close(),
  );
