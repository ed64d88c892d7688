/**
 * #19's crash test over the JetStream engine: a hub over a 3-node cluster is
 * SIGKILLed at random moments under two idempotent web-client producers
 * (file outboxes) and a reader, and a new hub takes its place each time (it
 * keeps no state: a fresh data dir). Then every acknowledged event is in the
 * log exactly once, where its ack said, in per-key order, at dense offsets,
 * and the reader — closed and reopened half way, resuming from its persisted
 * positions — saw every offset once, in order. The producers' retries after
 * each kill are answered from JetStream (their batches' message ids and the
 * per-producer subjects), since the new hub knows nothing of them.
 */
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { startHub, tempDir, waitHealthy, type Hub } from '../../harness/hub.ts';
import { startNatsCluster, type NatsCluster } from '../../harness/nats.ts';
import { startTcpProxy, type TcpProxy } from '../../harness/tcp-proxy.ts';
import { waitFor } from '../../harness/wait.ts';
import { createTopic } from '../../harness/topic-reader.ts';
import { deliveryProblems, logProblems, readLog, removeDirs, SOAK, startLoad, startReader, type Delivery, type Load, type Reader } from '../reliability/support.ts';

const ROUNDS = SOAK ? 20 : 4;
const PARTITIONS = 4;
const TOPIC = 'crash-js';

let nats: NatsCluster;
const dirs: string[] = [];
let hub: Hub | undefined;
const outputs: string[] = [];
let proxy: TcpProxy | undefined;
const loads: Load[] = [];
const readers: Reader[] = [];

async function hubOver(): Promise<Hub> {
  const h = await startHub({ args: ['--engine', nats.servers], waitHealthy: false });
  dirs.push(h.dataDir);
  await waitHealthy(h.url, 60_000);
  return h;
}

const RUN = process.env.TRIBUTARY_JETSTREAM_FAULT_TESTS === '1' || SOAK;

beforeAll(async () => {
  if (RUN) nats = await startNatsCluster({ nodes: 3 });
}, 30_000);
afterAll(async () => {
  await hub?.kill();
  for (const r of readers) await r.close().catch(() => undefined);
  for (const l of loads) await l.client.close().catch(() => undefined);
  await proxy?.close();
  removeDirs(dirs);
  await nats?.stop();
});

// 50-110 s on a loaded 2-core machine (hub start-ups over JetStream, leader elections): with the other fault tests, behind
// TRIBUTARY_JETSTREAM_FAULT_TESTS=1 (and TRIBUTARY_SOAK=1, 20 kills).
describe.skipIf(!RUN)('SIGKILL of a hub over JetStream under an idempotent producer load', () => {
  it(
    `${ROUNDS} kills in a row: acknowledged events once each, in key order, dense offsets, a reader without gap or duplicate`,
    async () => {
      // What the hubs logged (warnings and errors) is the first thing to read when this fails.
      const clientErrors: string[] = [];
      onTestFailed(() =>
        console.log(
          [...clientErrors.slice(-20), '----', ...outputs, hub?.output() ?? '']
            .join('\n----\n')
            .split('\n')
            .filter((x) => !/AUTH IS OFF|dashboard/.test(x))
            .slice(-60)
            .join('\n'),
        ),
      );
      const clientDir = tempDir('tributary-jscrash-clients-');
      dirs.push(clientDir);
      hub = await hubOver();
      proxy = await startTcpProxy(hub.port);
      await createTopic(hub.url, TOPIC, PARTITIONS);

      for (const [i, name] of ['p0', 'p1'].entries()) loads.push(startLoad({ url: proxy.wsUrl, topic: TOPIC, name, base: i * 1_000_000, dir: clientDir }));
      for (const l of loads) l.client.on('error', (e) => clientErrors.push(`${Date.now() % 1e6} ${String(e).slice(0, 300)}`));
      const deliveries: Delivery[] = [];
      const readerFile = `${clientDir}/reader.outbox`;
      readers.push(startReader({ url: proxy.wsUrl, topic: TOPIC, file: readerFile, deliveries }));
      const acked = (): number => loads.reduce((s, l) => s + l.acked.size, 0);

      const seed = Date.now();
      let rand = seed;
      const next = (): number => (rand = (rand * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
      for (let round = 0; round < ROUNDS; round++) {
        const target = acked() + 1 + Math.floor(next() * 400);
        await waitFor(() => acked() >= target, 60_000, `round ${round} (seed ${seed}): ${target} acks before the kill`);
        await hub.kill();
        outputs.push(hub.output());
        hub = await hubOver();
        proxy.retarget(hub.port);
        if (round === Math.floor(ROUNDS / 2)) {
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
    SOAK ? 1_800_000 : 300_000,
  );
});
