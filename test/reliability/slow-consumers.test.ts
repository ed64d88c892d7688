/**
 * Slow and stuck consumers against a real hub: 50 consumers stop reading
 * (their sockets paused, so TCP backpressure builds at the hub) while 5 read
 * a topic at full speed as it is produced to. The fast ones keep the rate
 * they have without the stuck ones, and the hub's memory stays under a bound
 * set by its own limits: what a stuck consumer has not read stays in the log,
 * not in hub memory. (test/broker/flow-control.test.ts is the 1-slow/1-fast
 * version with credit and the 4429 close.)
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHub, type Hub } from '../../harness/hub.ts';
import { rssBytes, waitFor } from '../../harness/wait.ts';
import { bytes, WsClient } from '../helpers/ws-client.ts';

const KiB = 1024;
const MiB = 1024 * KiB;
const STUCK = 50;
const FAST = 5;
const SEND_HIGH_WATER_BYTES = 128 * KiB;
const MAX_BUFFERED_BYTES_PER_CONNECTION = 1 * MiB;
/** Produced per measured phase; each stuck consumer leaves most of it unread. */
const PHASE_BYTES = 24 * MiB;
/** Heap and allocator noise on top of the configured per-connection bound. */
const RSS_SLACK_BYTES = 64 * MiB;
/** The fast consumers may be this many times slower with the stuck ones than without (a loaded 2-core machine). */
const RATE_HEADROOM = 3;

let hub: Hub;
const clients: WsClient[] = [];

async function client(): Promise<WsClient> {
  const c = await WsClient.connect(hub.wsUrl);
  c.decode = false;
  clients.push(c);
  return c;
}

async function metric(name: string): Promise<number> {
  const text = await (await fetch(`${hub.url}/metrics`)).text();
  const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
  return m ? Number(m[1]) : NaN;
}

async function createTopic(name: string): Promise<void> {
  const res = await fetch(`${hub.url}/v1/topics`, { method: 'POST', body: JSON.stringify({ name, partitions: 1, config: { fsync: 'never' } }) });
  expect(res.status).toBe(201);
}

/** Produces `totalBytes` of 1 KiB records in 100-record requests, four in flight. */
async function fill(p: WsClient, topic: string, totalBytes: number): Promise<void> {
  const batch = Array.from({ length: 100 }, () => ({ v: bytes('x'.repeat(1024)) }));
  const requests = Math.ceil(totalBytes / (100 * KiB));
  let sent = 0;
  const lane = async (): Promise<void> => {
    while (sent < requests) {
      sent++;
      await p.produce(topic, batch);
    }
  };
  await Promise.all([lane(), lane(), lane(), lane()]);
}

/** Produces a phase and returns the ms until every fast consumer has `target` bytes. */
async function timedPhase(producer: WsClient, topic: string, fast: Array<{ c: WsClient; sub: number }>, target: number): Promise<number> {
  const started = Date.now();
  await fill(producer, topic, PHASE_BYTES);
  await waitFor(() => fast.every(({ c, sub }) => c.deliveredBytes(sub) >= target), 60_000, `the ${FAST} fast consumers to read ${target} bytes of ${topic}`);
  return Date.now() - started;
}

beforeAll(async () => {
  hub = await startHub({
    args: [
      '--send-high-water-bytes',
      String(SEND_HIGH_WATER_BYTES),
      '--max-buffered-bytes-per-connection',
      String(MAX_BUFFERED_BYTES_PER_CONNECTION),
      // Stuck consumers stay connected through the test: the bound is on memory, not on closing them.
      // A stuck consumer cannot read the hub's ping either, so the idle timeout would close it too
      // (after 120 s by default: a loaded machine takes that long between pausing and resuming them).
      '--slow-consumer-timeout-ms',
      '600000',
      '--idle-timeout-ms',
      '600000',
    ],
  });
});

afterAll(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await hub?.stop();
  hub?.cleanup();
});

describe(`${STUCK} stuck consumers beside ${FAST} fast ones`, () => {
  it('keeps the fast ones at their rate and hub memory under its configured bound', async () => {
    const producer = await client();

    // Baseline: the fast consumers alone.
    await createTopic('alone');
    const alone = await Promise.all(
      Array.from({ length: FAST }, async () => {
        const c = await client();
        return { c, sub: (await c.subscribe('alone', { from: 'earliest' })).sub };
      }),
    );
    // Warm-up phase first, so that both measured phases start from a working-size heap.
    await timedPhase(producer, 'alone', alone, PHASE_BYTES);
    const aloneMs = await timedPhase(producer, 'alone', alone, 2 * PHASE_BYTES);
    await Promise.all(alone.map(({ c }) => c.close()));

    // Memory from here on: the alone run brought the heap to its working size.
    const baseline = rssBytes(hub.proc.pid!);
    let peak = baseline;
    const sampler = setInterval(() => (peak = Math.max(peak, rssBytes(hub.proc.pid!))), 20);
    let crowdedMs: number;
    let stuck: Array<{ c: WsClient; sub: number }>;
    try {
      // The same with 50 more consumers that read the first request and then stop reading.
      await createTopic('crowded');
      await producer.produce('crowded', [{ v: bytes('first') }]);
      const fast = await Promise.all(
        Array.from({ length: FAST }, async () => {
          const c = await client();
          return { c, sub: (await c.subscribe('crowded', { from: 'earliest' })).sub };
        }),
      );
      stuck = [];
      for (let i = 0; i < STUCK; i++) {
        const c = await client();
        stuck.push({ c, sub: (await c.subscribe('crowded', { from: 'earliest' })).sub });
      }
      await waitFor(() => stuck.every(({ c, sub }) => c.deliveredBytes(sub) > 0), 30_000, 'every consumer to read the first record');
      for (const { c } of stuck) c.pauseReading();
      crowdedMs = await timedPhase(producer, 'crowded', fast, PHASE_BYTES);
    } finally {
      clearInterval(sampler);
    }
    peak = Math.max(peak, rssBytes(hub.proc.pid!));

    // They really are stuck: the hub paused every one and most of the phase is unread.
    await waitFor(async () => (await metric('tributary_paused_connections')) === STUCK, 20_000, `${STUCK} paused connections`);
    const unread = stuck.reduce((n, { c, sub }) => n + PHASE_BYTES - c.deliveredBytes(sub), 0);
    expect(unread).toBeGreaterThan((STUCK * PHASE_BYTES) / 2);
    for (const { c, sub } of stuck) expect(c.deliveredBytes(sub)).toBeLessThan(PHASE_BYTES * 0.9);

    // Memory: at most each stuck connection's configured send-buffer cap, plus slack.
    const bound = STUCK * MAX_BUFFERED_BYTES_PER_CONNECTION + RSS_SLACK_BYTES;
    const growth = peak - baseline;
    if (process.env.SHOW_RSS)
      console.log(`RSS growth ${(growth / MiB).toFixed(1)} MiB (bound ${bound / MiB} MiB), unread ${(unread / MiB).toFixed(0)} MiB, alone ${aloneMs} ms, crowded ${crowdedMs} ms`);
    expect(growth, `hub RSS grew ${(growth / MiB).toFixed(0)} MiB while ${(unread / MiB).toFixed(0)} MiB waited for ${STUCK} stuck consumers`).toBeLessThan(bound);

    // Rate: the fast ones are not held back by the stuck ones.
    expect(crowdedMs, `fast consumers took ${crowdedMs} ms with ${STUCK} stuck ones, ${aloneMs} ms alone`).toBeLessThan(RATE_HEADROOM * aloneMs + 2_000);

    // Nothing lost: once they read again they get everything (a few of them; the rest just leave).
    const resumed = stuck.slice(0, FAST);
    await Promise.all(stuck.slice(FAST).map(({ c }) => c.close()));
    for (const { c } of resumed) c.resumeReading();
    // A closed consumer will never catch up: the failure names the close the hub sent.
    const caughtUp = async () => {
      const gone = resumed.find(({ c }) => c.closeInfo);
      if (gone) throw new Error(`a resumed consumer was closed: ${gone.c.closeInfo!.code} ${gone.c.closeInfo!.reason}`);
      return resumed.every(({ c, sub }) => c.deliveredBytes(sub) >= PHASE_BYTES);
    };
    await waitFor(caughtUp, 180_000, 'resumed consumers to catch up').catch(async (err: Error) => {
      const where = resumed.map(({ c, sub }) => `${(c.deliveredBytes(sub) / MiB).toFixed(1)} MiB (${c.readingState()})${c.closeInfo ? ` closed ${c.closeInfo.code} ${c.closeInfo.reason}` : ''}`);
      throw new Error(`${err.message} (${String(err.cause ?? '')}); delivered ${where.join(', ')} of ${PHASE_BYTES / MiB} MiB; hub paused connections ${await metric('tributary_paused_connections')}`);
    });
    await waitFor(async () => (await metric('tributary_paused_connections')) === 0, 20_000, 'no paused connections');
  }, 300_000);
});
