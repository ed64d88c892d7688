/**
 * SIGKILL under load: two idempotent producers (the web client with a file
 * outbox) load a keyed 4-partition topic while the hub is killed at random
 * moments and restarted on its data dir, ten times in a row (TRIBUTARY_SOAK=1:
 * forty). The clients reach the hub through the TCP proxy, retargeted at each
 * new hub's port. Then every acknowledged event is in the log exactly once,
 * where its ack said, per-key order holds, offsets are dense, and a
 * subscriber that was reading the whole time — closed and reopened half way,
 * resuming from its persisted positions — saw every offset once, in order.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { startHub, tempDir, type Hub } from '../../harness/hub.ts';
import { startTcpProxy, type TcpProxy } from '../../harness/tcp-proxy.ts';
import { waitFor } from '../../harness/wait.ts';
import { createTopic } from '../../harness/topic-reader.ts';
import { deliveryProblems, logProblems, readLog, removeDirs, SOAK, startLoad, startReader, type Delivery, type Load, type Reader } from './support.ts';

const ROUNDS = SOAK ? 40 : 10;
const PARTITIONS = 4;
const TOPIC = 'crash';

const dirs: string[] = [];
let hub: Hub | undefined;
let proxy: TcpProxy | undefined;
const loads: Load[] = [];
const readers: Reader[] = [];

afterAll(async () => {
  await hub?.kill();
  for (const r of readers) await r.close().catch(() => undefined);
  for (const l of loads) await l.client.close().catch(() => undefined);
  await proxy?.close();
  removeDirs(dirs);
});

describe('SIGKILL under an idempotent producer load', () => {
  it(
    `${ROUNDS} kills in a row: acknowledged events once each, in key order, dense offsets, a reader without gap or duplicate`,
    async () => {
      const clientDir = tempDir('tributary-crash-clients-');
      dirs.push(clientDir);
      hub = await startHub();
      dirs.push(hub.dataDir);
      const dataDir = hub.dataDir;
      proxy = await startTcpProxy(hub.port);
      await createTopic(hub.url, TOPIC, PARTITIONS);

      for (const [i, name] of ['p0', 'p1'].entries()) loads.push(startLoad({ url: proxy.wsUrl, topic: TOPIC, name, base: i * 1_000_000, dir: clientDir }));
      const deliveries: Delivery[] = [];
      const readerFile = `${clientDir}/reader.outbox`;
      readers.push(startReader({ url: proxy.wsUrl, topic: TOPIC, file: readerFile, deliveries }));
      const acked = (): number => loads.reduce((s, l) => s + l.acked.size, 0);

      const seed = Date.now();
      let rand = seed;
      const next = (): number => (rand = (rand * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
      for (let round = 0; round < ROUNDS; round++) {
        // A random moment: after a random number of further acks, so the kill lands mid-load.
        const target = acked() + 1 + Math.floor(next() * 400);
        await waitFor(() => acked() >= target, 60_000, `round ${round} (seed ${seed}): ${target} acks before the kill`);
        await hub.kill();
        hub = await startHub({ dataDir });
        proxy.retarget(hub.port);
        if (round === Math.floor(ROUNDS / 2)) {
          // The reader goes away and comes back: it resumes from the positions it persisted.
          await readers[0].close();
          readers[0] = startReader({ url: proxy.wsUrl, topic: TOPIC, file: readerFile, deliveries });
        }
      }

      for (const l of loads) await l.finish(60_000);
      const log = await readLog(hub.url, TOPIC, PARTITIONS);
      const total = log.reduce((s, p) => s + p.length, 0);
      await waitFor(() => deliveries.length >= total, 60_000, `the reader to reach ${total} records (has ${deliveries.length})`);

      expect(total).toBeGreaterThan(ROUNDS * 100);
      expect(logProblems(log, loads), `seed ${seed}`).toBe('');
      expect(deliveryProblems(log, deliveries), `seed ${seed}`).toBe('');
    },
    SOAK ? 1_800_000 : 480_000,
  ); // idle: well under a minute; a loaded shared machine needs the headroom
});
