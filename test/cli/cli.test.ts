/**
 * The `tributary` client commands against a real hub, run as processes the
 * way a user types them: topics, produce from stdin and from a file, consume
 * as JSON lines (from the earliest, an offset, an ISO time), errors with
 * their codes and exit statuses.
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

// Each run starts a Node process with tsx: a few seconds each on a busy machine.
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
    await cli(['topic', 'create', 'lines', '--partitions', '1']);
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
    await cli(['topic', 'create', 'events', '--partitions', '4']);
    const file = path.join(tmp, 'events.jsonl');
    const values = Array.from({ length: 200 }, (_, i) => ({ n: i, ok: i % 2 === 0, tags: ['a', String(i)] }));
    fs.writeFileSync(file, values.map((v) => JSON.stringify(v)).join('\n') + '\n\n');
    const produced = await cli(['produce', 'events', '--json', '--key', 'user-7', '--file', file]);
    expect(produced).toMatchObject({ code: 0, stderr: '' });
    // One key, one partition: find it, then read it from offset 150.
    const d = JSON.parse((await cli(['topic', 'describe', 'events', '--json'])).stdout) as { offsets: Array<{ partition: number; logEnd: number }> };
    const p = d.offsets.find((o) => o.logEnd > 0)!;
    expect(p.logEnd).toBe(200);
    const consumed = await cli(['consume', 'events', '--from', '150', '--partition', String(p.partition), '--limit', '50']);
    expect(consumed.code).toBe(0);
    const records = jsonLines(consumed.stdout);
    expect(records.map((r) => r.value)).toEqual(values.slice(150));
    expect(new Set(records.map((r) => r.key))).toEqual(new Set(['user-7']));
  });

  it('consumes from an ISO time: the records appended at or after it', async () => {
    await cli(['topic', 'create', 'timed', '--partitions', '2']);
    expect((await cli(['produce', 'timed'], 'a1\na2\na3\n')).code).toBe(0);
    await new Promise((r) => setTimeout(r, 1_100));
    const mid = new Date().toISOString();
    await new Promise((r) => setTimeout(r, 1_100));
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
    await cli(['topic', 'create', 'piped', '--partitions', '1']);
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
    const badFrom = await cli(['consume', 'lines', '--from', 'yesterday']);
    expect(badFrom.code).toBe(2);
    expect(badFrom.stderr).toMatch(/--from must be earliest, latest, an offset or an ISO time/);
    const notJson = await cli(['produce', 'lines', '--json'], '{"ok":1}\nnot json\n');
    expect(notJson.code).toBe(2);
    expect(notJson.stderr).toMatch(/line 2 is not JSON/);
    const down = await runCli(['topic', 'list'], { url: 'http://127.0.0.1:9' });
    expect(down.code).toBe(1);
    expect(down.stderr).toMatch(/DISCONNECTED: cannot reach the hub at http:\/\/127\.0\.0\.1:9/);
  });
});
