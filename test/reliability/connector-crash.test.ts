/**
 * A connector under crashes: the webhook sink (`tributary connect`, a
 * process of its own) posts a topic to a local HTTP server while a producer
 * writes, and in turn the hub is SIGKILLed and restarted on its data dir,
 * every connection between clients and hub is cut, and the connector itself
 * is SIGKILLed and restarted (its offsets are its consumer group's) — six faults (TRIBUTARY_SOAK=1:
 * thirty). Every acknowledged record reaches the endpoint at least once; none
 * is lost.
 */
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { startConnect, type ConnectProcess } from '../helpers/connect.ts';
import { startHub, tempDir, type Hub } from '../../harness/hub.ts';
import { startTcpProxy, type TcpProxy } from '../../harness/tcp-proxy.ts';
import { waitFor } from '../../harness/wait.ts';
import { createTopic } from '../../harness/topic-reader.ts';
import { removeDirs, SOAK, startLoad, type Load } from './support.ts';

const ROUNDS = SOAK ? 30 : 6;
const TOPIC = 'events';

const dirs: string[] = [];
let hub: Hub | undefined;
let proxy: TcpProxy | undefined;
let load: Load | undefined;
let connect: ConnectProcess | undefined;
let server: http.Server | undefined;

afterAll(async () => {
  await connect?.kill();
  await load?.client.close().catch(() => undefined);
  await proxy?.close();
  await hub?.kill();
  server?.close();
  removeDirs(dirs);
});

describe('webhook sink under hub SIGKILLs, cut connections and its own SIGKILL', () => {
  it(
    `${ROUNDS} faults: every acknowledged record delivered at least once`,
    async () => {
      const dir = tempDir('tributary-connector-crash-');
      dirs.push(dir);
      // Short group sessions: a killed connector's partitions move to its successor within the test's time.
      const env = { TRIBUTARY_GROUPS_SESSION_TIMEOUT_MS: '3000', TRIBUTARY_GROUPS_HEARTBEAT_INTERVAL_MS: '500' };
      hub = await startHub({ env });
      dirs.push(hub.dataDir);
      const dataDir = hub.dataDir;
      await createTopic(hub.url, TOPIC, 3);
      proxy = await startTcpProxy(hub.port);

      const delivered = new Map<number, number>(); // n → times posted
      server = http.createServer((req, res) => {
        let body = '';
        req.on('data', (d) => (body += d));
        req.on('end', () => {
          const { records } = JSON.parse(body) as { records: Array<{ value: { n: number } }> };
          for (const r of records) delivered.set(r.value.n, (delivered.get(r.value.n) ?? 0) + 1);
          res.writeHead(204).end();
        });
      });
      await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
      const file = path.join(dir, 'hooks.yaml');
      fs.writeFileSync(
        file,
        [
          `hub: { url: ${proxy.wsUrl} }`,
          'connectors:',
          '  - name: hooks',
          '    type: webhook-sink',
          `    topic: ${TOPIC}`,
          `    url: http://127.0.0.1:${(server.address() as { port: number }).port}/ingest`,
          '    batchSize: 50',
          '    backoff: { baseMs: 50, capMs: 300 }',
        ].join('\n'),
      );
      load = startLoad({ url: proxy.wsUrl, topic: TOPIC, name: 'producer', base: 0, dir, window: 200 });
      connect = await startConnect(file);

      const seed = Date.now();
      let rand = seed;
      const next = (): number => (rand = (rand * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
      const faults: string[] = [];
      for (let round = 0; round < ROUNDS; round++) {
        const target = delivered.size + 50 + Math.floor(next() * 300);
        await waitFor(() => delivered.size >= target, 60_000, `round ${round} (seed ${seed}, after ${faults.join(', ')}): ${target} records delivered\n${connect!.output()}`);
        if (round % 3 === 0) {
          faults.push('hub SIGKILL');
          await hub.kill();
          hub = await startHub({ dataDir, env });
          proxy.retarget(hub.port);
        } else if (round % 3 === 1) {
          faults.push('cut');
          proxy.cutAll();
        } else {
          faults.push('connector SIGKILL');
          await connect.kill();
          connect = await startConnect(file);
        }
      }

      await load.finish(60_000);
      const acked = [...load.acked.keys()];
      const missing = (): number[] => acked.filter((n) => !delivered.has(n));
      await waitFor(() => missing().length === 0, 90_000, `seed ${seed}: every acknowledged record delivered (missing ${missing().length}, first ${missing().slice(0, 5).join(', ')})`);
      expect(acked.length).toBeGreaterThan(ROUNDS * 50);
      expect(missing()).toEqual([]);
      // At-least-once: re-deliveries after the faults are allowed, records that were never produced are not.
      expect([...delivered.keys()].filter((n) => !load!.acked.has(n))).toEqual([]);
    },
    SOAK ? 1_800_000 : 480_000,
  ); // idle: well under a minute; a loaded shared machine needs the headroom
});
