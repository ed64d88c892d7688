/**
 * Consumer groups under a hub SIGKILL and cut connections: three members of
 * a group consume a keyed 6-partition topic through the TCP proxy while a
 * producer writes, and the hub is killed (and restarted on its data dir) or
 * every connection cut, alternately, six times (TRIBUTARY_SOAK=1: thirty).
 * Watched the whole time over HTTP: a committed offset never goes backwards
 * (not across a restart either) and never passes a record no member handled
 * (no record skipped). At the end every record was handled at least once, the
 * group committed up to the end of every partition, and those commits
 * survive one more SIGKILL.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { tempDir, type Hub } from '../../harness/hub.ts';
import { startTcpProxy, type TcpProxy } from '../../harness/tcp-proxy.ts';
import { waitFor } from '../../harness/wait.ts';
import { createTopic, groupView, member, startGroupHub, type TestMember } from '../groups/support.ts';
import { removeDirs, SOAK, startLoad, type Load } from './support.ts';

const ROUNDS = SOAK ? 30 : 6;
const PARTITIONS = 6;
const TOPIC = 'orders';
const GROUP = 'billing';

const dirs: string[] = [];
let hub: Hub | undefined;
let proxy: TcpProxy | undefined;
let load: Load | undefined;
const members: TestMember[] = [];

afterAll(async () => {
  for (const m of members) await m.client.close().catch(() => undefined);
  await load?.client.close().catch(() => undefined);
  await proxy?.close();
  await hub?.kill();
  removeDirs(dirs);
});

/** Every commit of the group in log order, [partition, next offset] (from the internal topic, over HTTP). */
async function commitsInLog(url: string): Promise<Array<[number, number]>> {
  const out: Array<[number, number]> = [];
  let offset = 0;
  for (;;) {
    const res = await fetch(`${url}/v1/topics/__consumer_offsets/partitions/0/records?offset=${offset}&limit=1000`);
    if (res.status !== 200) throw new Error(`read __consumer_offsets: ${res.status} ${await res.text()}`);
    const body = (await res.json()) as { records: Array<{ key: string; value: unknown }>; nextOffset: number; highWatermark: number };
    for (const r of body.records) {
      const [g, t, p] = r.key.split('\u0000');
      if (g === GROUP && t === TOPIC && r.value !== null) out.push([Number(p), Number(r.value)]);
    }
    if (body.nextOffset >= body.highWatermark || body.records.length === 0) return out;
    offset = body.nextOffset;
  }
}

describe('consumer groups under SIGKILL and cut connections', () => {
  it(
    `${ROUNDS} kills and cuts: commits survive and only move forward, no record skipped`,
    async () => {
      const clientDir = tempDir('tributary-groups-crash-');
      dirs.push(clientDir);
      hub = await startGroupHub();
      dirs.push(hub.dataDir);
      const dataDir = hub.dataDir;
      await createTopic(hub.url, TOPIC, PARTITIONS);
      proxy = await startTcpProxy(hub.port);

      load = startLoad({ url: proxy.wsUrl, topic: TOPIC, name: 'producer', base: 0, dir: clientDir, window: 200 });
      const handled = new Set<string>(); // "partition:offset"
      const handledN = new Set<number>();
      for (let i = 0; i < 3; i++) {
        const m = member(proxy.wsUrl, `m${i}`, TOPIC, GROUP, { creditBytes: 16 * 1024 }, { backoffInitialMs: 50, backoffMaxMs: 300, requestTimeoutMs: 5_000 });
        const seen = m.seen;
        seen.push = (...rs) => {
          for (const r of rs) {
            handled.add(`${r.partition}:${r.offset}`);
            handledN.add((r.value as { n: number }).n);
          }
          return Array.prototype.push.apply(seen, rs);
        };
        members.push(m);
      }

      // The watcher: what the hub reports as committed, checked against what was handled and what it reported before.
      const problems: string[] = [];
      const lastCommitted = new Map<number, number>();
      let watches = 0;
      let watching = true;
      const watcher = (async () => {
        while (watching) {
          const url = hub!.url;
          const view = await groupView(url, GROUP).catch(() => null); // the hub may be down just now
          for (const o of view?.offsets ?? []) {
            if (o.topic !== TOPIC || o.committed === null) continue;
            const before = lastCommitted.get(o.partition) ?? 0;
            if (o.committed < before) problems.push(`partition ${o.partition}: committed ${o.committed} after ${before} (went backwards)`);
            // Handled before committed: every offset below a commit was handled by then.
            for (let off = before; off < o.committed; off++)
              if (!handled.has(`${o.partition}:${off}`)) problems.push(`partition ${o.partition}: committed ${o.committed} but offset ${off} was never handled (skipped)`);
            lastCommitted.set(o.partition, Math.max(before, o.committed));
          }
          if (view) watches++;
          await new Promise((r) => setTimeout(r, 50)); // polling period of the watcher
        }
      })();

      const seed = Date.now();
      let rand = seed;
      const next = (): number => (rand = (rand * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
      for (let round = 0; round < ROUNDS; round++) {
        const target = handled.size + 50 + Math.floor(next() * 300);
        await waitFor(() => handled.size >= target, 60_000, `round ${round} (seed ${seed}): ${target} records handled before the fault`);
        if (round % 2 === 0) {
          await hub.kill();
          hub = await startGroupHub({ dataDir });
          proxy.retarget(hub.port);
        } else {
          proxy.cutAll();
        }
      }

      await load.finish(60_000);
      const sent = load.sent;
      // A problem seen already ends the wait: its report says more than a timeout.
      await waitFor(() => handledN.size >= sent || problems.length > 0, 60_000, `seed ${seed}: all ${sent} records handled (have ${handledN.size})`);
      if (problems.length) expect(problems.slice(0, 20).join('\n'), `seed ${seed}`).toBe('');
      const fullyCommitted = async (url: string): Promise<boolean> => {
        const view = await groupView(url, GROUP);
        const mine = view?.offsets.filter((o) => o.topic === TOPIC) ?? [];
        // A partition no key hashes to stays empty and uncommitted.
        return mine.some((o) => o.highWatermark > 0) && mine.every((o) => o.committed === o.highWatermark || (o.highWatermark === 0 && o.committed === null));
      };
      await waitFor(() => fullyCommitted(hub!.url), 60_000, `seed ${seed}: the group to commit every partition to its end`);
      const final = watches;
      await waitFor(() => watches > final, 10_000, 'the watcher to see the final commits');
      watching = false;
      await watcher;

      // One more SIGKILL: the commits are on disk.
      for (const m of members) await m.client.close();
      members.length = 0;
      await hub.kill();
      hub = await startGroupHub({ dataDir });
      expect(await fullyCommitted(hub.url), 'commits after the last SIGKILL').toBe(true);

      for (let n = 0; n < sent; n++) if (!handledN.has(n)) problems.push(`n=${n} never handled`);
      const commits = await commitsInLog(hub.url);
      const last = new Map<number, number>();
      for (const [p, o] of commits) {
        if (o < (last.get(p) ?? 0)) problems.push(`__consumer_offsets: partition ${p} committed ${o} after ${last.get(p)}`);
        last.set(p, o);
      }
      expect(commits.length).toBeGreaterThan(PARTITIONS);
      expect(problems.slice(0, 20).join('\n'), `seed ${seed}`).toBe('');
    },
    SOAK ? 1_800_000 : 480_000,
  ); // idle: well under a minute; a loaded shared machine needs the headroom
});
