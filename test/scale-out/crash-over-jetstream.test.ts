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
import { afterAll, beforeAll, describe, it, onTestFailed } from 'vitest';
import { startHub, tempDir, waitHealthy, type Hub } from '../../harness/hub.ts';
import { startNatsCluster, type NatsCluster } from '../../harness/nats.ts';
import { startTcpProxy, type TcpProxy } from '../../harness/tcp-proxy.ts';
import { createTopic } from '../../harness/topic-reader.ts';
import { killUnderLoad, removeDirs, SOAK, stopKillRun, type KillRun } from '../reliability/support.ts';

// In the normal run two kills (the second with the reader closed and reopened); TRIBUTARY_SOAK=1: twenty.
const ROUNDS = SOAK ? 20 : 2;
const PARTITIONS = 4;
const TOPIC = 'crash-js';

let nats: NatsCluster;
const dirs: string[] = [];
const outputs: string[] = [];
const run: KillRun = { loads: [], readers: [] };
let proxy: TcpProxy | undefined;

async function hubOver(): Promise<Hub> {
  if (run.hub) outputs.push(run.hub.output());
  const h = await startHub({ args: ['--engine', nats.servers], waitHealthy: false });
  dirs.push(h.dataDir);
  await waitHealthy(h.url, 60_000);
  return h;
}

beforeAll(async () => {
  nats = await startNatsCluster({ nodes: 3 });
}, 30_000);
afterAll(async () => {
  await stopKillRun(run, proxy);
  removeDirs(dirs);
  await nats?.stop();
});

describe('SIGKILL of a hub over JetStream under an idempotent producer load', () => {
  it(
    `${ROUNDS} kills in a row: acknowledged events once each, in key order, dense offsets, a reader without gap or duplicate`,
    async () => {
      // What the hubs logged (warnings and errors) is the first thing to read when this fails.
      const clientErrors: string[] = [];
      onTestFailed(() =>
        console.log(
          [...clientErrors.slice(-20), '----', ...outputs, run.hub?.output() ?? '']
            .join('\n----\n')
            .split('\n')
            .filter((x) => !/AUTH IS OFF|dashboard/.test(x))
            .slice(-60)
            .join('\n'),
        ),
      );
      const clientDir = tempDir('tributary-jscrash-clients-');
      dirs.push(clientDir);
      run.hub = await hubOver();
      proxy = await startTcpProxy(run.hub.port);
      await createTopic(run.hub.url, TOPIC, PARTITIONS);
      // Each new hub starts with a fresh data dir: it keeps no state.
      await killUnderLoad({
        run,
        proxy,
        topic: TOPIC,
        partitions: PARTITIONS,
        rounds: ROUNDS,
        clientDir,
        restart: hubOver,
        onLoad: (l) => l.client.on('error', (e) => clientErrors.push(`${Date.now() % 1e6} ${String(e).slice(0, 300)}`)),
      });
    },
    SOAK ? 1_800_000 : 180_000,
  );
});
