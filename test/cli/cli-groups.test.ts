/**
 * `tributary consume --group` and `tributary groups …` against a real hub:
 * a limited run commits exactly what it printed, the next run of the group
 * goes on from there, and list, describe, reset and delete show and move
 * the committed offsets.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHub, type Hub } from '../helpers/hub.ts';
import { jsonLines, runCli } from './cli-run.ts';

let hub: Hub;
let served = true;

beforeAll(async () => {
  hub = await startHub();
  const probe = await fetch(`${hub.url}/v1/groups`);
  served = !(probe.status === 404 && ((await probe.json()) as { error?: { code?: string } }).error?.code === 'NOT_FOUND');
});

afterAll(async () => {
  await hub?.stop();
  hub?.cleanup();
});

const cli = (args: string[], input?: string) => runCli(args, { url: hub.url, input });

interface GroupDoc {
  group: string;
  state: string;
  members: unknown[];
  offsets: Array<{ topic: string; partition: number; committed: number; highWatermark: number; lag: number }>;
}

describe('tributary groups', { timeout: 180_000 }, () => {
  it('a group run commits what it printed; list, describe, reset and delete manage the offsets', async (ctx) => {
    if (!served) ctx.skip();
    expect((await cli(['topic', 'create', 'orders', '--partitions', '2'])).code).toBe(0);
    const lines = Array.from({ length: 100 }, (_, i) => `order ${i}`);
    // Half to each partition, so that both have records to reset within.
    expect((await cli(['produce', 'orders', '--partition', '0'], lines.slice(0, 50).join('\n') + '\n')).code).toBe(0);
    expect((await cli(['produce', 'orders', '--partition', '1'], lines.slice(50).join('\n') + '\n')).code).toBe(0);

    const first = await cli(['consume', 'orders', '--group', 'billing', '--from', 'earliest', '--limit', '60']);
    expect(first.code).toBe(0);
    const firstValues = jsonLines(first.stdout).map((r) => r.value);
    expect(firstValues).toHaveLength(60);

    const listed = JSON.parse((await cli(['groups', 'list', '--json'])).stdout) as { groups: Array<{ group: string; members: number; lag: number; topics: string[] }> };
    expect(listed.groups.find((g) => g.group === 'billing')).toMatchObject({ members: 0, lag: 40, topics: ['orders'] });
    const table = await cli(['groups', 'list']);
    expect(table.stdout).toMatch(/\nbilling\s+empty\s+\d+\s+0\s+orders\s+40\n/);

    const described = JSON.parse((await cli(['groups', 'describe', 'billing', '--json'])).stdout) as GroupDoc;
    expect(described.offsets.reduce((n, o) => n + o.committed, 0)).toBe(60);

    // The next run goes on after what the first printed: together they are every record once.
    const second = await cli(['consume', 'orders', '--group', 'billing', '--limit', '40']);
    expect(second.code).toBe(0);
    expect([...firstValues, ...jsonLines(second.stdout).map((r) => r.value)].sort()).toEqual([...lines].sort());

    const reset = await cli(['groups', 'reset', 'billing', '--topic', 'orders', '--to', 'earliest', '--json']);
    expect(reset.code).toBe(0);
    const after = JSON.parse((await cli(['groups', 'describe', 'billing', '--json'])).stdout) as GroupDoc;
    expect(after.offsets.map((o) => o.committed)).toEqual([0, 0]);
    const again = await cli(['consume', 'orders', '--group', 'billing', '--limit', '100']);
    expect(jsonLines(again.stdout)).toHaveLength(100);

    const one = await cli(['groups', 'reset', 'billing', '--topic', 'orders', '--to', '3', '--partition', '1', '--json']);
    expect(one.code).toBe(0);
    const moved = JSON.parse((await cli(['groups', 'describe', 'billing', '--json'])).stdout) as GroupDoc;
    expect(moved.offsets.find((o) => o.partition === 1)?.committed).toBe(3);

    expect(await cli(['groups', 'delete', 'billing'])).toMatchObject({ code: 0, stdout: 'deleted group billing\n' });
    const gone = await cli(['groups', 'describe', 'billing']);
    expect(gone.code).toBe(1);
    expect(gone.stderr).toMatch(/UNKNOWN_GROUP/);
  });
});
