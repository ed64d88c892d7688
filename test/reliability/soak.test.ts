/**
 * A soak against a real hub (TRIBUTARY_SOAK=1; TRIBUTARY_SOAK_MINUTES, default
 * 30): a paced producer, live subscribers that reconnect every few seconds,
 * and a consumer group whose members come and go, all at once. Every minute
 * (or every sixth of a shorter run) it samples the hub's RSS, its open file
 * descriptors and the producer's p99 produce latency; at the end each must be
 * flat: bounded growth from the first sample after warm-up, not a trend.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Hub } from '../../harness/hub.ts';
import { openFds, rssBytes } from '../../harness/wait.ts';
import { bytes, WsClient } from '../helpers/ws-client.ts';
import { createTopic, member, startGroupHub, type TestMember } from '../groups/support.ts';

const SOAK = process.env.TRIBUTARY_SOAK === '1';
const MINUTES = Number(process.env.TRIBUTARY_SOAK_MINUTES ?? 30);
const DURATION_MS = MINUTES * 60_000;
const SAMPLE_MS = Math.min(60_000, DURATION_MS / 6);
const MiB = 1024 * 1024;
const PARTITIONS = 4;
/** One produce request of 10 records every this many ms (about 1,000 records/s). */
const PRODUCE_EVERY_MS = 10;
const SUBSCRIBERS = 3;
const RECONNECT_EVERY_MS = 5_000;
const GROUP_MEMBERS = 3;
const GROUP_CHURN_EVERY_MS = 4_000;

interface Sample {
  atMs: number;
  rss: number;
  fds: number;
  p99Ms: number;
  produced: number;
  /** Records handled by the group's members so far (those that left included). */
  groupHandled: number;
}

let hub: Hub;
const members: TestMember[] = [];
const subscribers: Array<{ c: WsClient; sub: number }> = [];

function p99(xs: number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(s.length * 0.99))];
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

beforeAll(async () => {
  if (!SOAK) return;
  hub = await startGroupHub();
  await createTopic(hub.url, 'soak', PARTITIONS);
});

afterAll(async () => {
  if (!SOAK) return;
  await Promise.all([...members.map((m) => m.client.close()), ...subscribers.map((s) => s.c.close())]);
  await hub?.stop();
  hub?.cleanup();
});

describe.skipIf(!SOAK)(`soak${SOAK ? ` for ${MINUTES} min` : ' (skipped: set TRIBUTARY_SOAK=1, and TRIBUTARY_SOAK_MINUTES, default 30)'}`, () => {
  it(
    'keeps RSS, open fds and p99 produce latency flat under mixed load with churn',
    async () => {
      const pid = hub.proc.pid!;
      const started = Date.now();
      const end = started + DURATION_MS;
      let stop = false;
      let produced = 0;
      let latencies: number[] = [];
      let reconnects = 0;
      let groupJoins = 0;
      let memberSeq = 0;
      const failures: string[] = [];

      const producer = await WsClient.connect(hub.wsUrl);
      const batch = Array.from({ length: 10 }, (_, i) => ({ v: bytes(`soak-${i}-${'x'.repeat(90)}`) }));
      const produceLoop = (async () => {
        let next = Date.now();
        while (!stop) {
          const t0 = performance.now();
          try {
            await producer.produce('soak', batch);
            produced += batch.length;
            latencies.push(performance.now() - t0);
          } catch (e) {
            failures.push(`produce: ${(e as Error).message}`);
          }
          next += PRODUCE_EVERY_MS;
          const wait = next - Date.now();
          if (wait > 0) await new Promise((r) => setTimeout(r, wait));
          else next = Date.now(); // behind: do not burst to catch up
        }
      })();

      const subscribe = async (): Promise<{ c: WsClient; sub: number }> => {
        const c = await WsClient.connect(hub.wsUrl);
        c.decode = false;
        return { c, sub: (await c.subscribe('soak', { from: 'latest' })).sub };
      };
      for (let i = 0; i < SUBSCRIBERS; i++) subscribers.push(await subscribe());
      const reconnectLoop = (async () => {
        while (!stop) {
          await new Promise((r) => setTimeout(r, RECONNECT_EVERY_MS));
          if (stop) break;
          // The oldest subscriber must have been delivered something, then it is replaced.
          const old = subscribers.shift()!;
          if (old.c.deliveredBytes(old.sub) === 0) failures.push(`a subscriber got nothing in ${RECONNECT_EVERY_MS} ms`);
          await old.c.close();
          subscribers.push(await subscribe());
          reconnects++;
        }
      })();

      const everyMember: TestMember[] = [];
      const groupHandled = (): number => everyMember.reduce((n, m) => n + m.seen.length, 0);
      const join = (): void => {
        everyMember.push(member(hub.wsUrl, `soaker-${memberSeq}`, 'soak', 'soakers', { creditBytes: 64 * 1024 }));
        members.push(everyMember[everyMember.length - 1]);
        memberSeq++;
        groupJoins++;
      };
      for (let i = 0; i < GROUP_MEMBERS; i++) join();
      const churnLoop = (async () => {
        while (!stop) {
          await new Promise((r) => setTimeout(r, GROUP_CHURN_EVERY_MS));
          if (stop) break;
          const leaving = members.shift()!;
          await leaving.client.close();
          join();
        }
      })();

      const samples: Sample[] = [];
      while (Date.now() < end) {
        const nextAt = Math.min(end, started + (samples.length + 1) * SAMPLE_MS);
        await new Promise((r) => setTimeout(r, Math.max(0, nextAt - Date.now())));
        const window = latencies;
        latencies = [];
        samples.push({ atMs: Date.now() - started, rss: rssBytes(pid), fds: openFds(pid), p99Ms: p99(window), produced, groupHandled: groupHandled() });
        if (process.env.SHOW_SOAK) {
          const s = samples[samples.length - 1];
          console.log(
            `${(s.atMs / 1000).toFixed(0)} s: RSS ${(s.rss / MiB).toFixed(1)} MiB, fds ${s.fds}, p99 ${s.p99Ms.toFixed(1)} ms, produced ${s.produced}, group handled ${s.groupHandled}, reconnects ${reconnects}, joins ${groupJoins}`,
          );
        }
        expect(hub.proc.exitCode, 'hub alive').toBeNull();
      }
      stop = true;
      await Promise.all([produceLoop, reconnectLoop, churnLoop]);
      await producer.close();

      expect(failures.slice(0, 5)).toEqual([]);
      expect(produced).toBeGreaterThan(0);
      // The group kept consuming through the churn: more records handled in every window.
      for (let i = 1; i < samples.length; i++) expect(samples[i].groupHandled, `group handled by sample ${i}`).toBeGreaterThan(samples[i - 1].groupHandled);

      // Flat: compared with the first sample (the warm-up is over by then), later samples stay within a bounded growth.
      const [first, ...rest] = samples;
      const last = samples[samples.length - 1];
      const report = samples.map((s) => `${(s.atMs / 1000).toFixed(0)}s ${(s.rss / MiB).toFixed(0)}MiB ${s.fds}fd p99 ${s.p99Ms.toFixed(1)}ms`).join('; ');
      expect(samples.length, report).toBeGreaterThanOrEqual(3);
      const rssCap = first.rss * 1.5 + 32 * MiB;
      expect(Math.max(...rest.map((s) => s.rss)), `RSS: ${report}`).toBeLessThan(rssCap);
      // The last third no higher than the second sample by more than a little: growth that keeps going is a leak.
      expect(last.rss, `RSS trend: ${report}`).toBeLessThan(Math.max(...samples.slice(0, Math.ceil(samples.length / 3) + 1).map((s) => s.rss)) + 32 * MiB);
      // Fds: connections come and go (subscribers, members); only they may differ.
      const fdSlack = SUBSCRIBERS + GROUP_MEMBERS + 20;
      expect(Math.max(...rest.map((s) => s.fds)), `fds: ${report}`).toBeLessThanOrEqual(first.fds + fdSlack);
      // p99: the later windows' median no worse than 4× the earlier ones' plus 100 ms (noise on a shared machine).
      const p99s = samples.map((s) => s.p99Ms);
      const firstHalf = p99s.slice(0, Math.ceil(p99s.length / 2));
      const secondHalf = p99s.slice(Math.ceil(p99s.length / 2));
      expect(median(secondHalf), `p99 produce latency: ${report}`).toBeLessThan(4 * median(firstHalf) + 100);
    },
    DURATION_MS + 180_000,
  );
});
