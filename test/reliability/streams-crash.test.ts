/**
 * A stream application (a windowed count, in a process of its own:
 * test/streams/app-child.ts) working through the TCP proxy while the hub is
 * SIGKILLed and restarted on its data dir, or every connection cut,
 * alternately, four times (TRIBUTARY_SOAK=1: twenty). Its output must still be
 * exactly once: every window's updates are 1, 2, …, n with n the count
 * computed straight from the input (a lost input leaves n short, a double
 * count or a duplicated output repeats or skips a number).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { partitionForKey } from '../../protocol/index.ts';
import { createClient, type Client } from '../../web-client/node.ts';
import { startHub, type Hub } from '../../harness/hub.ts';
import { startTcpProxy, type TcpProxy } from '../../harness/tcp-proxy.ts';
import { waitFor } from '../../harness/wait.ts';
import { createTopic, directCounts, keyedEvents, produceInput, windowResults } from '../streams/fixtures.ts';
import { SOAK } from './support.ts';

const CHILD = path.join(path.dirname(fileURLToPath(import.meta.url)), '../streams/app-child.ts');
const ROUNDS = SOAK ? 20 : 4;
const EVENTS = SOAK ? 60_000 : 20_000;
const WINDOW_MS = 10_000;

/** The child prints `STATE {json}` every 100 ms; positions are `topic/partition` → next offset. */
interface ChildState {
  metrics: { processed: number; commits: number };
  positions: Record<string, number>;
}

let hub: Hub | undefined;
let proxy: TcpProxy | undefined;
let client: Client | undefined;
let child: ChildProcess | undefined;

afterAll(async () => {
  if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  await client?.close();
  await proxy?.close();
  await hub?.kill();
  hub?.cleanup();
});

describe('a stream application under hub SIGKILLs and cut connections', () => {
  it(
    `${ROUNDS} kills and cuts: the windowed counts come out exactly once`,
    async () => {
      const env = { TRIBUTARY_GROUPS_SESSION_TIMEOUT_MS: '3000', TRIBUTARY_GROUPS_HEARTBEAT_INTERVAL_MS: '500' };
      hub = await startHub({ env });
      const dataDir = hub.dataDir;
      await createTopic(hub.url, 'clicks', 4);
      await createTopic(hub.url, 'counts', 4);
      client = createClient({ url: hub.wsUrl, outbox: 'memory', name: 'streams-crash-input' });
      const events = keyedEvents(EVENTS, 200, 1_700_000_000_000, 3);
      await produceInput(client, 'clicks', 4, events);
      await client.close();
      client = undefined;
      const ends = [0, 0, 0, 0];
      for (const e of events) ends[partitionForKey(e.key, 4)]++;

      proxy = await startTcpProxy(hub.port);
      const proxied = `127.0.0.1:${proxy.port}`;
      const job = { wsUrl: `ws://${proxied}/v1/ws`, httpUrl: `http://${proxied}`, applicationId: 'clickcount', input: 'clicks', output: 'counts', windowMs: WINDOW_MS, static: true, throttleMs: 3 };
      child = spawn(process.execPath, ['--import', 'tsx', CHILD, JSON.stringify(job)], { stdio: ['ignore', 'pipe', 'pipe'] });
      let state: ChildState | undefined;
      let out = '';
      let buf = '';
      child.stdout!.on('data', (d: Buffer) => {
        buf += d;
        for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
          const line = buf.slice(0, i);
          buf = buf.slice(i + 1);
          if (line.startsWith('STATE ')) state = JSON.parse(line.slice(6)) as ChildState;
          else out += `${line}\n`;
        }
      });
      child.stderr!.on('data', (d: Buffer) => (out += d));

      const processed = (): number => state?.metrics.processed ?? 0;
      const step = Math.floor(EVENTS / (ROUNDS + 2));
      for (let round = 0; round < ROUNDS; round++) {
        await waitFor(() => processed() >= (round + 1) * step, 90_000, `round ${round}: ${(round + 1) * step} inputs processed (${processed()})\n${out}`);
        if (round % 2 === 0) {
          await hub.kill();
          hub = await startHub({ dataDir, env });
          proxy.retarget(hub.port);
        } else {
          proxy.cutAll();
        }
      }
      await waitFor(() => ends.every((end, p) => state?.positions[`clicks/${p}`] === end), 120_000, `the application to reach the input's end\n${out}`);
      child.kill('SIGTERM');
      await waitFor(() => child!.exitCode !== null || child!.signalCode !== null, 30_000, 'the application to stop');

      const { latest, updates } = await windowResults(hub.url, 'counts');
      const expected = directCounts(events, WINDOW_MS);
      const wrong: string[] = [];
      for (const [w, n] of expected) {
        const u = updates.get(w) ?? [];
        if (u.length !== n || u.some((x, i) => x !== i + 1)) wrong.push(`${w}: ${u.length} updates for ${n} events (${u.slice(0, 8).join(',')}…)`);
      }
      expect(wrong.slice(0, 5)).toEqual([]);
      expect(latest.size).toBe(expected.size);
    },
    SOAK ? 1_800_000 : 480_000,
  ); // idle: well under a minute; a loaded shared machine needs the headroom
});
