/**
 * Crash and restart: a hub killed with SIGKILL under load serves its data
 * directory again after a restart, /healthz stays 503 until recovery is
 * done, every acknowledged record survives, and SIGTERM shuts down cleanly.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { ackOffsets } from '../../protocol/frames.ts';
import { startHub, tempDir, type Hub } from '../../harness/hub.ts';
import { bytes, text, WsClient } from '../helpers/ws-client.ts';
import { waitFor } from '../../harness/wait.ts';

const dirs: string[] = [];
const hubs: Hub[] = [];

afterAll(async () => {
  for (const h of hubs) await h.kill();
  for (const h of hubs) h.cleanup();
});

describe('crash recovery', () => {
  it('a hub killed with SIGKILL mid-load restarts, answers 503 until recovered, and keeps every acked record', async () => {
    const dataDir = tempDir();
    dirs.push(dataDir);
    const hub = await startHub({ dataDir });
    hubs.push(hub);
    await fetch(`${hub.url}/v1/topics`, { method: 'POST', body: JSON.stringify({ name: 'load', partitions: 3 }) });

    const acked = new Map<string, { partition: number; offset: number }>();
    let stop = false;
    const writer = async (n: number): Promise<void> => {
      const c = await WsClient.connect(hub.wsUrl);
      let i = 0;
      try {
        while (!stop) {
          const recs = Array.from({ length: 20 }, () => ({ k: `w${n}-${i % 5}`, v: bytes(`w${n}:${i++}`) }));
          const ack = await c.produce('load', recs);
          ackOffsets(ack, recs.length).forEach((where, k) => acked.set(text(recs[k].v), where));
        }
      } catch {
        // the hub died under us: requests without an ack are not promised
      }
    };
    const writers = [0, 1, 2, 3].map(writer);
    await waitFor(() => acked.size > 100, 30_000, 'writes acknowledged before the kill');
    await hub.kill(); // SIGKILL mid-load
    stop = true;
    await Promise.all(writers);
    expect(acked.size).toBeGreaterThan(100);

    const again = await startHub({ dataDir, waitHealthy: false, env: { TRIBUTARY_TEST_RECOVERY_DELAY_MS: '600' } });
    hubs.push(again);
    expect((await fetch(`${again.url}/livez`)).status).toBe(200);
    const early = await fetch(`${again.url}/healthz`);
    expect(early.status).toBe(503);
    expect(await early.json()).toEqual({ status: 'recovering' });
    const notReady = await fetch(`${again.url}/v1/topics`);
    expect(notReady.status).toBe(503);
    expect(((await notReady.json()) as { error: { code: string } }).error.code).toBe('NOT_READY');

    await waitFor(async () => (await fetch(`${again.url}/healthz`)).status === 200, 15_000, 'recovery to finish');

    // Every acked record is there, where its ack said.
    const c = await WsClient.connect(again.wsUrl);
    const s = await c.subscribe('load', { from: 'earliest' });
    const total = s.partitions.reduce((n, p) => n + p.hw, 0);
    expect(total).toBeGreaterThanOrEqual(acked.size);
    const recs = await c.waitForRecords(s.sub, total, 20_000);
    const found = new Map(recs.map((r) => [text(r.value), { partition: r.partition, offset: r.offset }]));
    for (const [value, where] of acked) expect(found.get(value), value).toEqual(where);
    // And the hub takes new writes after the restart.
    const ack = await c.produce('load', [{ k: 'after', v: bytes('after restart') }]);
    expect(ack.parts).toHaveLength(1);
    await c.close();
  });

  it('SIGTERM finishes in-flight appends, closes storage and exits 0; the next hub opens the same directory', async () => {
    const dataDir = tempDir();
    const hub = await startHub({ dataDir });
    hubs.push(hub);
    const c = await WsClient.connect(hub.wsUrl);
    const pending = Array.from({ length: 20 }, (_, i) =>
      c.produce('graceful', [{ v: bytes(`g${i}`) }]).then(
        () => true,
        () => false,
      ),
    );
    const ackedBeforeExit = await c.produce('graceful', [{ v: bytes('first') }]);
    expect(ackedBeforeExit.parts).toHaveLength(1);
    const code = await hub.stop();
    expect(code).toBe(0);
    const results = await Promise.all(pending);
    const closed = await c.closed;
    expect([1001, 1006]).toContain(closed.code);

    const next = await startHub({ dataDir });
    hubs.push(next);
    const d = (await (await fetch(`${next.url}/v1/topics/graceful`)).json()) as { offsets: Array<{ logEnd: number }> };
    // Everything acked is there (the lock was released, so the new hub could open the directory at all).
    expect(d.offsets[0].logEnd).toBeGreaterThanOrEqual(results.filter(Boolean).length + 1);
  });
});
