/**
 * Flow control against a real hub: explicit credit, a consumer that stops
 * reading is paused without growing hub memory while another keeps full
 * speed, and a consumer paused too long is closed with 4429 SLOW_CONSUMER.
 */
import fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHub, type Hub } from '../../harness/hub.ts';
import { bytes, WsClient } from '../helpers/ws-client.ts';

const MiB = 1024 * 1024;
const hubs: Hub[] = [];
const clients: WsClient[] = [];

async function client(hub: Hub): Promise<WsClient> {
  const c = await WsClient.connect(hub.wsUrl);
  clients.push(c);
  return c;
}

function rssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m![1]) * 1024;
}

async function metric(hub: Hub, name: string): Promise<number> {
  const text = await (await fetch(`${hub.url}/metrics`)).text();
  const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
  return m ? Number(m[1]) : NaN;
}

/** Produces `totalBytes` of 1 KiB records in 100-record requests, a few in flight at a time. */
async function fill(hub: Hub, topic: string, totalBytes: number): Promise<number> {
  const p = await client(hub);
  const value = bytes('x'.repeat(1024));
  const batch = Array.from({ length: 100 }, () => ({ v: value }));
  const requests = Math.ceil(totalBytes / (100 * 1024));
  let sent = 0;
  const lane = async (): Promise<void> => {
    while (sent < requests) {
      sent++;
      await p.produce(topic, batch);
    }
  };
  await Promise.all([lane(), lane(), lane(), lane()]);
  return requests * 100;
}

async function createTopic(hub: Hub, name: string): Promise<void> {
  const res = await fetch(`${hub.url}/v1/topics`, { method: 'POST', body: JSON.stringify({ name, partitions: 1, config: { fsync: 'never' } }) });
  expect(res.status).toBe(201);
}

let hub: Hub;

beforeAll(async () => {
  hub = await startHub({
    args: ['--send-high-water-bytes', String(256 * 1024), '--max-buffered-bytes-per-connection', String(8 * MiB), '--slow-consumer-timeout-ms', '60000'],
  });
  hubs.push(hub);
});

afterAll(async () => {
  await Promise.all(clients.map((c) => c.close()));
  for (const h of hubs) {
    await h.stop();
    h.cleanup();
  }
});

describe('credit', () => {
  it('sends only while the subscription has credit, and more after a credit frame', async () => {
    await createTopic(hub, 'credit');
    const p = await client(hub);
    for (let i = 0; i < 10; i++) await p.produce('credit', [{ v: bytes(`r${i}`) }]);
    const c = await client(hub);
    const s = await c.subscribe('credit', { from: 'earliest', credit: 1 });
    await c.until(() => c.frames(s.sub).length >= 1);
    await new Promise((r) => setTimeout(r, 200)); // proves a negative: no second read arrives without more credit
    // One byte of credit buys one read: at least one whole batch, here exactly one.
    expect(c.records(s.sub).length).toBe(1);
    c.credit(s.sub, 1024 * 1024);
    const all = await c.waitForRecords(s.sub, 10);
    expect(all.map((r) => r.offset)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  });

  it('refuses credit for an unknown subscription with a typed error', async () => {
    const c = await client(hub);
    c.credit(4242, 100);
    await c.until(() => c.unsolicitedErrors.length > 0);
    expect(c.unsolicitedErrors[0]).toMatchObject({ code: 'UNKNOWN_SUBSCRIPTION', sub: 4242 });
  });
});

describe('backpressure', () => {
  it('pauses a consumer that stops reading, keeps hub memory bounded, and serves another at full speed', async () => {
    await createTopic(hub, 'firehose');
    const slow = await client(hub);
    slow.decode = false;
    const s1 = await slow.subscribe('firehose', { from: 'earliest' });
    const fast = await client(hub);
    fast.decode = false;
    const s2 = await fast.subscribe('firehose', { from: 'earliest' });
    const phase = 128 * MiB;

    // Warm-up with both consumers reading, so that the hub's heap reaches its working size first.
    await fill(hub, 'firehose', phase);
    await fast.until(() => fast.deliveredBytes(s2.sub) >= phase && slow.deliveredBytes(s1.sub) >= phase, 60_000, 'warm-up delivery');

    slow.pauseReading();
    const slowBefore = slow.deliveredBytes(s1.sub);
    const baseline = rssBytes(hub.proc.pid!);
    let peak = baseline;
    const sampler = setInterval(() => (peak = Math.max(peak, rssBytes(hub.proc.pid!))), 20);
    const started = Date.now();
    await fill(hub, 'firehose', phase);
    await fast.until(() => fast.deliveredBytes(s2.sub) >= 2 * phase, 30_000, 'the fast consumer to get everything');
    const fastMs = Date.now() - started;
    clearInterval(sampler);

    expect(await metric(hub, 'tributary_paused_connections')).toBe(1);
    // What the slow consumer has not read stays in the log, not in hub memory.
    const unread = 2 * phase - slow.deliveredBytes(s1.sub);
    expect(unread).toBeGreaterThan(phase / 2);
    const growth = peak - baseline;
    if (process.env.SHOW_RSS) console.log(`RSS growth ${(growth / MiB).toFixed(1)} MiB, unread ${(unread / MiB).toFixed(0)} MiB, fast ${fastMs} ms`);
    expect(growth, `hub RSS grew by ${(growth / MiB).toFixed(0)} MiB while ${(unread / MiB).toFixed(0)} MiB waited for a paused consumer`).toBeLessThan(48 * MiB);
    expect(fastMs).toBeLessThan(30_000);
    expect(slow.deliveredBytes(s1.sub) - slowBefore).toBeLessThan(phase / 2);

    // Once it reads again it gets everything, nothing lost while paused.
    slow.resumeReading();
    await slow.until(() => slow.deliveredBytes(s1.sub) >= 2 * phase, 60_000, 'the slow consumer to catch up');
    expect(await metric(hub, 'tributary_paused_connections')).toBe(0);
    // Two phases of 128 MiB: well under 30 s on an idle 2-core machine, not at a load average of 15.
  }, 120_000);

  it('closes a consumer paused longer than slowConsumerTimeoutMs with 4429 SLOW_CONSUMER', async () => {
    const strict = await startHub({
      args: ['--send-high-water-bytes', String(64 * 1024), '--max-buffered-bytes-per-connection', String(4 * MiB), '--slow-consumer-timeout-ms', '300'],
    });
    hubs.push(strict);
    await createTopic(strict, 'stuck');
    const slow = await client(strict);
    slow.decode = false;
    await slow.subscribe('stuck', { from: 'earliest' });
    slow.pauseReading();
    // Resume reading as soon as the hub has counted the close, not after the whole fill: uWS ends a closing
    // socket whose peer does not answer the close within a few seconds, and then the client sees 1006.
    const filled = fill(strict, 'stuck', 24 * MiB);
    const deadline = Date.now() + 30_000;
    while ((await metric(strict, 'tributary_slow_consumer_closes_total')) < 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    slow.resumeReading();
    const closed = await slow.closed;
    expect(closed.code).toBe(4429);
    expect(closed.reason).toMatch(/^SLOW_CONSUMER/);
    await filled;
    expect(await metric(strict, 'tributary_slow_consumer_closes_total')).toBe(1);
    expect(await metric(strict, 'tributary_connections')).toBe(1); // the filler's
    // Others are unaffected.
    const other = await client(strict);
    const ack = await other.produce('stuck', [{ v: bytes('still here') }]);
    expect(ack.parts[0].o).toBeGreaterThan(0);
  });
});
