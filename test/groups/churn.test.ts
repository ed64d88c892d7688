/**
 * Churn: members join and leave every few hundred ms while a producer
 * writes. Afterwards every record has been handled at least once, and the
 * group's committed offsets (read back from __consumer_offsets, commit by
 * commit) never went backwards on any partition.
 *
 * 10 s in the normal run; TRIBUTARY_CHURN_SECONDS=30 for the long soak.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Hub } from '../../harness/hub.ts';
import { createClient } from '../../web-client/node.ts';
import { createTopic, member, sleep, startGroupHub, waitFor, type TestMember } from './support.ts';

const CHURN_SECONDS = Number(process.env.TRIBUTARY_CHURN_SECONDS ?? 10);
const PARTITIONS = 8;

let hub: Hub;
const members: TestMember[] = [];

beforeAll(async () => {
  hub = await startGroupHub();
});
afterAll(async () => {
  await Promise.all(members.map((m) => m.client.close()));
  await hub?.stop();
  hub?.cleanup();
});

/** Every commit of `group` in log order: [partition, offset] (from the internal topic, over HTTP). */
async function commitsOf(group: string, topic: string): Promise<Array<[number, number]>> {
  const out: Array<[number, number]> = [];
  let offset = 0;
  for (;;) {
    const res = await fetch(`${hub.url}/v1/topics/__consumer_offsets/partitions/0/records?offset=${offset}&limit=1000`);
    expect(res.status).toBe(200);
    const body = (await res.json()) as { records: Array<{ key: string; value: unknown }>; nextOffset: number; highWatermark: number };
    for (const r of body.records) {
      const [g, t, p] = r.key.split('\u0000');
      if (g === group && t === topic && r.value !== null) out.push([Number(p), Number(r.value)]);
    }
    if (body.nextOffset >= body.highWatermark || body.records.length === 0) return out;
    offset = body.nextOffset;
  }
}

describe('consumer group churn', () => {
  it(
    `members joining and leaving for ${CHURN_SECONDS} s while producing: every record handled, offsets monotonic`,
    async () => {
      await createTopic(hub.url, 'churn', PARTITIONS);
      const handled = new Set<number>();
      const join = (name: string): TestMember => {
        const m = member(hub.wsUrl, name, 'churn', 'churners', { creditBytes: 16 * 1024 });
        const seen = m.seen;
        // Count by value: the record's n, whichever member handled it.
        seen.push = (...rs) => {
          for (const r of rs) handled.add((r.value as { n: number }).n);
          return Array.prototype.push.apply(seen, rs);
        };
        members.push(m);
        return m;
      };
      // Two members stay throughout, so the group is never empty.
      join('steady-0');
      join('steady-1');

      const producer = createClient({ url: hub.wsUrl, outbox: 'memory', name: 'churn-producer' });
      let produced = 0;
      let producing = true;
      const production = (async () => {
        while (producing) {
          for (let i = 0; i < 20; i++) await producer.send('churn', { partition: produced % PARTITIONS, value: { n: produced++ } });
          await sleep(25); // paces the producer (not a wait)
        }
        await producer.flush();
      })();

      const churners: TestMember[] = [];
      let joins = 0;
      let leaves = 0;
      const until = Date.now() + CHURN_SECONDS * 1000;
      while (Date.now() < until) {
        if (churners.length < 2 || (churners.length < 6 && Math.random() < 0.5)) {
          churners.push(join(`churner-${joins++}`));
        } else {
          const [gone] = churners.splice(Math.floor(Math.random() * churners.length), 1);
          await gone.client.close();
          leaves++;
        }
        await sleep(200 + Math.random() * 200); // paces the churn (not a wait)
      }
      producing = false;
      await production;
      await producer.close();
      for (const c of churners) await c.client.close();

      await waitFor(() => handled.size === produced, 30_000, `all ${produced} records handled (have ${handled.size})`);
      for (let n = 0; n < produced; n++) expect(handled.has(n)).toBe(true);
      expect(joins).toBeGreaterThanOrEqual(CHURN_SECONDS);
      expect(leaves).toBeGreaterThan(0);

      const commits = await commitsOf('churners', 'churn');
      expect(commits.length).toBeGreaterThan(PARTITIONS);
      const last = new Map<number, number>();
      for (const [p, o] of commits) {
        expect(o, `partition ${p}`).toBeGreaterThanOrEqual(last.get(p) ?? 0);
        last.set(p, o);
      }
      for (const m of members) expect(m.errors.filter((e) => !/DISCONNECTED|CLOSED/.test(String(e)))).toEqual([]);
    },
    CHURN_SECONDS * 1000 + 90_000,
  );
});
