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
import { afterAll, describe, it } from 'vitest';
import { startHub, tempDir } from '../../harness/hub.ts';
import { startTcpProxy, type TcpProxy } from '../../harness/tcp-proxy.ts';
import { createTopic } from '../../harness/topic-reader.ts';
import { killUnderLoad, removeDirs, SOAK, stopKillRun, type KillRun } from './support.ts';

const ROUNDS = SOAK ? 40 : 10;
const PARTITIONS = 4;
const TOPIC = 'crash';

const dirs: string[] = [];
const run: KillRun = { loads: [], readers: [] };
let proxy: TcpProxy | undefined;

afterAll(async () => {
  await stopKillRun(run, proxy);
  removeDirs(dirs);
});

describe('SIGKILL under an idempotent producer load', () => {
  it(
    `${ROUNDS} kills in a row: acknowledged events once each, in key order, dense offsets, a reader without gap or duplicate`,
    async () => {
      const clientDir = tempDir('tributary-crash-clients-');
      dirs.push(clientDir);
      const hub = (run.hub = await startHub());
      dirs.push(hub.dataDir);
      proxy = await startTcpProxy(hub.port);
      await createTopic(hub.url, TOPIC, PARTITIONS);
      // Each new hub restarts on the same data dir.
      await killUnderLoad({ run, proxy, topic: TOPIC, partitions: PARTITIONS, rounds: ROUNDS, clientDir, restart: () => startHub({ dataDir: hub.dataDir }) });
    },
    SOAK ? 1_800_000 : 480_000,
  ); // idle: well under a minute; a loaded shared machine needs the headroom
});
