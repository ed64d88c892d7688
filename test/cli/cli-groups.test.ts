/**
 * `tributary consume --group` and `tributary groups …` against a real hub:
 * a limited run commits exactly what it printed, the next run of the group
 * goes on from there, and list, describe, reset and delete show and move
 * the committed offsets.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHub, type Hub } from '../../harness/hub.ts';
import { jsonLines, runCli } from './cli-run.ts';

let hub: Hub;

beforeAll(async () => {
  hub = await startHub();
});

afterAll(async () => {
  await hub?.stop();
  hub?.cleanup();
});

const cli = (args: string[], input?: string) => runCli(args, { url: hub.url, input });
/** Checks between CLI runs read the hub directly: each CLI run is a process start, seconds on a busy machine. */
const describeGroup = async (group: string): Promise<GroupDoc> => (await (await fetch(`${hub.url}/v1/groups/${group}`)).json()) as GroupDoc;

interface GroupDoc {
  group: string;
  state: string;
  members: unknown[];
  offsets: Array<{ topic: string; partition: number; committed: number; highWatermark: number; lag: number }>;
}

describe('tributary groups', { timeout: 300_000 }, () => {
  it('a group run commits what it printed; list, describe, reset and delete manage the offsets', async () => {
    expect((await cli(['topic', 'create', 'orders', '--partitions', '2'])).code).toBe(0);
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
