/**
 * The `tributary` client commands against a real hub, run as processes the
 * way a user types them: topics, produce from stdin and from a file, consume
 * as JSON lines (from the earliest, an offset, an ISO time), consumer groups,
 * errors with their codes and exit statuses.
 *
 * One hub for the file, and the tests run concurrently, each on topics of its
 * own: a CLI run is a process start, mostly waiting, so they overlap well.
 * Set-up the test is not about (creating a topic, finding a partition) goes
 * over HTTP, not through another process start.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHub, type Hub } from '../../harness/hub.ts';
import { jsonLines, runCli } from './cli-run.ts';

let hub: Hub;
let tmp: string;

beforeAll(async () => {
  hub = await startHub();
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tributary-cli-'));
});

afterAll(async () => {
  await hub?.stop();
  hub?.cleanup();
  fs.rmSync(tmp, { recursive: true, force: true });
});

const cli = (args: string[], input?: string) => runCli(args, { url: hub.url, input });
const createTopic = async (name: string, partitions: number): Promise<void> => {
  const res = await fetch(`${hub.url}/v1/topics`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name, partitions }) });
  expect(res.status).toBeLessThan(300);
};

/** Checks between CLI runs read the hub directly: each CLI run is a process start. */
const describeGroup = async (group: string): Promise<GroupDoc> => (await (await fetch(`${hub.url}/v1/groups/${group}`)).json()) as GroupDoc;

interface GroupDoc {
  group: string;
  state: string;
  members: unknown[];
  offsets: Array<{ topic: string; partition: number; committed: number; highWatermark: number; lag: number }>;
}

// Each run starts a Node process (about a second on a busy machine); every test has topics of its own and they all run at once.
describe.concurrent('tributary', () => {
  describe('tributary topic', { timeout: 180_000 }, () => {
    it('creates, lists, describes and deletes a topic', async () => {
      const created = await cli(['topic', 'create', 'things', '--partitions', '3', '--config', 'retentionMs=3600000']);
      expect(created).toMatchObject({ code: 0, stdout: 'created topic things with 3 partitions\n' });
      const listed = await cli(['topic', 'list']);
      expect(listed.code).toBe(0);
      expect(listed.stdout).toMatch(/^TOPIC\s+PARTITIONS\s+RECORDS\s+SIZE\n/);
      expect(listed.stdout).toMatch(/\nthings\s+3\s+0\s+0 B\n/);
      const described = await cli(['topic', 'describe', 'things', '--json']);
      const doc = JSON.parse(described.stdout) as { partitions: number; config: { retentionMs: number }; offsets: unknown[] };
      expect(doc).toMatchObject({ partitions: 3, config: { retentionMs: 3_600_000 } });
      expect(doc.offsets).toHaveLength(3);
      expect(await cli(['topic', 'delete', 'things'])).toMatchObject({ code: 0, stdout: 'deleted topic things\n' });
      const gone = await cli(['topic', 'describe', 'things']);
      expect(gone.code).toBe(1);
      expect(gone.stderr).toMatch(/^tributary: UNKNOWN_TOPIC: /);
    });
  });

  describe('tributary produce and consume', { timeout: 180_000 }, () => {
    it('produces 10,000 lines from stdin and consumes them back identical, as JSON lines', async () => {
      await createTopic('lines', 1);
      const lines = Array.from({ length: 10_000 }, (_, i) => `line ${i} ${'é✓'.repeat(i % 5)} {"not":"parsed"}`);
      const produced = await cli(['produce', 'lines'], `${lines.join('\n')}\n`);
      expect(produced).toMatchObject({ code: 0, stderr: '' });
      // Batched through the web client: seconds, not minutes (a generous bound for a busy shared machine).
      expect(produced.ms).toBeLessThan(60_000);
      console.log(`tributary produce: 10,000 lines in ${produced.ms} ms (process start included)`);

      const consumed = await cli(['consume', 'lines', '--from', 'earliest', '--limit', '10000']);
      expect(consumed.code).toBe(0);
      // Piped, nothing decorative: stdout is exactly the records, stderr empty.
      expect(consumed.stderr).toBe('');
      const records = jsonLines(consumed.stdout);
      expect(records.map((r) => r.value)).toEqual(lines);
      expect(records.map((r) => r.offset)).toEqual(lines.map((_, i) => i));
      for (const r of records.slice(0, 3)) expect(Object.keys(r)).toEqual(['topic', 'partition', 'offset', 'timestamp', 'key', 'value', 'headers']);
      expect(records[0]).toMatchObject({ topic: 'lines', partition: 0, key: null, headers: [] });
    });

    it('produces JSON values with a key from a file and reads them from an offset and one partition', async () => {
      await createTopic('events', 4);
      const file = path.join(tmp, 'events.jsonl');
      const values = Array.from({ length: 200 }, (_, i) => ({ n: i, ok: i % 2 === 0, tags: ['a', String(i)] }));
      fs.writeFileSync(file, values.map((v) => JSON.stringify(v)).join('\n') + '\n\n');
      const produced = await cli(['produce', 'events', '--json', '--key', 'user-7', '--file', file]);
      expect(produced).toMatchObject({ code: 0, stderr: '' });
      // One key, one partition: find it, then read it from offset 150.
      const d = (await (await fetch(`${hub.url}/v1/topics/events`)).json()) as { offsets: Array<{ partition: number; logEnd: number }> };
      const p = d.offsets.find((o) => o.logEnd > 0)!;
      expect(p.logEnd).toBe(200);
      const consumed = await cli(['consume', 'events', '--from', '150', '--partition', String(p.partition), '--limit', '50']);
      expect(consumed.code).toBe(0);
      const records = jsonLines(consumed.stdout);
      expect(records.map((r) => r.value)).toEqual(values.slice(150));
      expect(new Set(records.map((r) => r.key))).toEqual(new Set(['user-7']));
    });

    it('consumes from an ISO time: the records appended at or after it', async () => {
      await createTopic('timed', 2);
      expect((await cli(['produce', 'timed'], 'a1\na2\na3\n')).code).toBe(0);
      // Timestamps are milliseconds of the same clock: a few apart is enough to split a from b.
      await new Promise((r) => setTimeout(r, 20));
      const mid = new Date().toISOString();
      await new Promise((r) => setTimeout(r, 20));
      expect((await cli(['produce', 'timed'], 'b1\nb2\nb3\nb4\n')).code).toBe(0);
      const consumed = await cli(['consume', 'timed', '--from', mid, '--limit', '4']);
      expect(consumed.code).toBe(0);
      expect(
        jsonLines(consumed.stdout)
          .map((r) => r.value)
          .sort(),
      ).toEqual(['b1', 'b2', 'b3', 'b4']);
      for (const r of jsonLines(consumed.stdout)) expect(r.timestamp as number).toBeGreaterThanOrEqual(Date.parse(mid));
    });

    it('pipes into jq: every line is one JSON object', async () => {
      await createTopic('piped', 1);
      await cli(['produce', 'piped', '--json'], '{"temp":21.5}\n{"temp":22}\n{"temp":19.25}\n');
      const bin = path.resolve('bin/tributary.mjs');
      const { execFileSync } = await import('node:child_process');
      const viaJq = execFileSync('bash', ['-c', `node ${bin} consume piped --from earliest --limit 3 | jq -c '.value.temp'`], { env: { ...process.env, TRIBUTARY_URL: hub.url }, encoding: 'utf8' });
      expect(viaJq).toBe('21.5\n22\n19.25\n');
    });

    it("fails with the code and exit status 1 for the hub's refusals, 2 for bad flags", async () => {
      const unknown = await cli(['produce', 'nope'], 'x\n');
      expect(unknown.code).toBe(1);
      expect(unknown.stderr).toMatch(/UNKNOWN_TOPIC/);
      await createTopic('refusals', 1);
      const badFrom = await cli(['consume', 'refusals', '--from', 'yesterday']);
      expect(badFrom.code).toBe(2);
      expect(badFrom.stderr).toMatch(/--from must be earliest, latest, an offset or an ISO time/);
      const notJson = await cli(['produce', 'refusals', '--json'], '{"ok":1}\nnot json\n');
      expect(notJson.code).toBe(2);
      expect(notJson.stderr).toMatch(/line 2 is not JSON/);
      const down = await runCli(['topic', 'list'], { url: 'http://127.0.0.1:9' });
      expect(down.code).toBe(1);
      expect(down.stderr).toMatch(/DISCONNECTED: cannot reach the hub at http:\/\/127\.0\.0\.1:9/);
    });
  });

  describe('tributary groups', { timeout: 300_000 }, () => {
    it('a group run commits what it printed; list, describe, reset and delete manage the offsets', async () => {
      await createTopic('orders', 2);
      const lines = Array.from({ length: 100 }, (_, i) => `order ${i}`);
      // Half to each partition, so that both have records to reset within.
      expect((await cli(['produce', 'orders', '--partition', '0'], lines.slice(0, 50).join('\n') + '\n')).code).toBe(0);
      expect((await cli(['produce', 'orders', '--partition', '1'], lines.slice(50).join('\n') + '\n')).code).toBe(0);

      const first = await cli(['consume', 'orders', '--group', 'billing', '--from', 'earliest', '--limit', '60']);
      expect(first.code).toBe(0);
      const firstValues = jsonLines(first.stdout).map((r) => r.value);
      expect(firstValues).toHaveLength(60);

      const table = await cli(['groups', 'list']);
      expect(table.stdout).toMatch(/\nbilling\s+empty\s+\d+\s+0\s+orders\s+40\n/);

      const described = JSON.parse((await cli(['groups', 'describe', 'billing', '--json'])).stdout) as GroupDoc;
      expect(described).toMatchObject({ group: 'billing', state: 'empty', members: [] });
      expect(described.offsets.reduce((n, o) => n + o.committed, 0)).toBe(60);

      // The next run goes on after what the first printed: together they are every record once.
      const second = await cli(['consume', 'orders', '--group', 'billing', '--limit', '40']);
      expect(second.code).toBe(0);
      expect([...firstValues, ...jsonLines(second.stdout).map((r) => r.value)].sort()).toEqual([...lines].sort());

      const reset = await cli(['groups', 'reset', 'billing', '--topic', 'orders', '--to', 'earliest', '--json']);
      expect(reset.code).toBe(0);
      expect(JSON.parse(reset.stdout).offsets.map((o: { committed: number }) => o.committed)).toEqual([0, 0]);
      const after = await describeGroup('billing');
      expect(after.offsets.map((o) => o.committed)).toEqual([0, 0]);
      const again = await cli(['consume', 'orders', '--group', 'billing', '--limit', '100']);
      expect(jsonLines(again.stdout)).toHaveLength(100);

      const one = await cli(['groups', 'reset', 'billing', '--topic', 'orders', '--to', '3', '--partition', '1', '--json']);
      expect(one.code).toBe(0);
      const moved = await describeGroup('billing');
      expect(moved.offsets.find((o) => o.partition === 1)?.committed).toBe(3);

      expect(await cli(['groups', 'delete', 'billing'])).toMatchObject({ code: 0, stdout: 'deleted group billing\n' });
      const gone = await cli(['groups', 'describe', 'billing']);
      expect(gone.code).toBe(1);
      expect(gone.stderr).toMatch(/UNKNOWN_GROUP/);
    });
  });
});
