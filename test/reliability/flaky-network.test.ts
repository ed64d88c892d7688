/**
 * A flaky network: every connection between the clients and the hub passes
 * the TCP proxy's chaos — each chunk delayed at random, each connection cut
 * (often mid-frame) or half-closed after a random number of bytes. Two
 * idempotent producers and a subscriber work through it; at the end the log
 * holds every event exactly once where its ack said, in key order with dense
 * offsets, and the subscriber saw every offset once, in order.
 * TRIBUTARY_SOAK=1 runs ten times the events.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { startHub, tempDir, type Hub } from '../../harness/hub.ts';
import { startTcpProxy, type TcpProxy } from '../../harness/tcp-proxy.ts';
import { waitFor } from '../../harness/wait.ts';
import { createTopic } from '../../harness/topic-reader.ts';
import { deliveryProblems, logProblems, readLog, removeDirs, SOAK, startLoad, startReader, type Load, type Reader } from './support.ts';

const EVENTS = SOAK ? 60_000 : 6_000;
const PARTITIONS = 4;
const TOPIC = 'flaky';

const dirs: string[] = [];
let hub: Hub | undefined;
let proxy: TcpProxy | undefined;
const loads: Load[] = [];
let reader: Reader | undefined;

afterAll(async () => {
  await reader?.close().catch(() => undefined);
  for (const l of loads) await l.client.close().catch(() => undefined);
  await proxy?.close();
  await hub?.stop();
  removeDirs(dirs);
});

describe('producers and a subscriber through delays, cuts and half-closes', () => {
  it(
    `${EVENTS} events: exactly once in the log, gap-free reads`,
    async () => {
      const clientDir = tempDir('tributary-flaky-clients-');
      dirs.push(clientDir);
      hub = await startHub();
      dirs.push(hub.dataDir);
      await createTopic(hub.url, TOPIC, PARTITIONS);
      proxy = await startTcpProxy(hub.port);
      const seed = Number(process.env.TRIBUTARY_CHAOS_SEED ?? Date.now() % 1_000_000); // replay a failing run with its seed
      proxy.chaos({ minBytes: 2_000, maxBytes: 48_000, maxDelayMs: 15, halfCloseShare: 0.25, seed });

      for (const [i, name] of ['p0', 'p1'].entries()) loads.push(startLoad({ url: proxy.wsUrl, topic: TOPIC, name, base: i * 1_000_000, dir: clientDir }));
      reader = startReader({ url: proxy.wsUrl, topic: TOPIC, file: `${clientDir}/reader.outbox` });
      const acked = (): number => loads.reduce((s, l) => s + l.acked.size, 0);

      await waitFor(() => acked() >= EVENTS, SOAK ? 1_500_000 : 150_000, `seed ${seed}: ${EVENTS} acks through the chaos (have ${acked()})`);
      for (const l of loads) await l.finish(60_000);
      const log = await readLog(hub.url, TOPIC, PARTITIONS); // straight from the hub, not through the proxy
      const total = log.reduce((s, p) => s + p.length, 0);
      const deliveries = reader.deliveries;
      await waitFor(() => deliveries.length >= total, 60_000, `seed ${seed}: the reader to reach ${total} records`).catch((err: Error) => {
        throw new Error(`${err.message} (has ${deliveries.length}; reader connection ${reader!.client.state}; proxy cuts ${proxy!.cuts}, half-closes ${proxy!.halfCloses})`);
      });

      expect(proxy.cuts, 'the chaos cut connections').toBeGreaterThan(5);
      expect(proxy.halfCloses, 'the chaos half-closed connections').toBeGreaterThan(0);
      expect(logProblems(log, loads), `seed ${seed}`).toBe('');
      expect(deliveryProblems(log, deliveries), `seed ${seed}`).toBe('');
    },
    SOAK ? 1_800_000 : 480_000,
  ); // idle: well under a minute; a loaded shared machine needs the headroom
});
