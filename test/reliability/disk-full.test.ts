/**
 * A real full disk: the hub's data directory on a 20 MB tmpfs. Produce gets
 * a clear retriable error, nothing acknowledged is lost, and the hub
 * recovers by itself once space returns.
 *
 * Mounting needs root (these machines run tests as root); elsewhere the test
 * is skipped with the reason.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHub, type Hub } from '../../harness/hub.ts';
import { waitFor } from '../../harness/wait.ts';

const MiB = 1024 * 1024;

function tryMountTmpfs(dir: string, sizeMb: number): string | undefined {
  if (process.getuid?.() !== 0) return 'not root: cannot mount a tmpfs';
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${sizeMb}m`, 'tmpfs', dir], { stdio: 'pipe' });
    return undefined;
  } catch (err) {
    return `mount -t tmpfs failed: ${(err as Error).message.split('\n')[0]}`;
  }
}

const mountPoint = fs.mkdtempSync(path.join(os.tmpdir(), 'tributary-full-'));
const skipReason = tryMountTmpfs(mountPoint, 20);
if (skipReason) console.warn(`disk-full test skipped: ${skipReason}`);

let hub: Hub | undefined;

beforeAll(async () => {
  if (skipReason) return;
  hub = await startHub({ dataDir: path.join(mountPoint, 'data'), args: ['--topic-segment-bytes', String(4 * MiB)] });
});

afterAll(async () => {
  await hub?.stop();
  if (!skipReason) execFileSync('umount', ['-l', mountPoint]);
  fs.rmSync(mountPoint, { recursive: true, force: true });
});

interface Outcome {
  acked: number[];
  refusals: Map<string, number>;
}

/** Produces 64 KiB records, one per request, each numbered; returns what was acknowledged and the refusals seen. */
async function produceUntil(url: string, from: number, stopAfterRefusals: number, max: number): Promise<Outcome & { next: number }> {
  const acked: number[] = [];
  const refusals = new Map<string, number>();
  const filler = 'x'.repeat(64 * 1024);
  let n = from;
  let refused = 0;
  while (refused < stopAfterRefusals && n < from + max) {
    const res = await fetch(`${url}/v1/topics/full/records`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ records: [{ key: 'k', value: { n, filler } }] }),
    });
    const body = (await res.json()) as { error?: { code?: string; retriable?: boolean } };
    if (res.status === 200) {
      acked.push(n);
      n++;
    } else {
      refused++;
      const key = `${res.status} ${body.error?.code} retriable=${body.error?.retriable}`;
      refusals.set(key, (refusals.get(key) ?? 0) + 1);
    }
  }
  return { acked, refusals, next: n };
}

async function storedNumbers(url: string): Promise<number[]> {
  const out: number[] = [];
  let offset = 0;
  for (;;) {
    const res = await fetch(`${url}/v1/topics/full/partitions/0/records?offset=${offset}&limit=1000&maxBytes=${16 * MiB}`);
    expect(res.status).toBe(200);
    const body = (await res.json()) as { records: Array<{ value: { n: number } }>; nextOffset: number; highWatermark: number };
    for (const r of body.records) out.push(r.value.n);
    if (body.records.length === 0 || body.nextOffset >= body.highWatermark) return out;
    offset = body.nextOffset;
  }
}

describe.skipIf(skipReason !== undefined)('disk full (20 MB tmpfs)', () => {
  it('refuses produce with a retriable error while full, loses nothing acknowledged, and recovers by itself when space returns', async () => {
    const url = hub!.url;
    const made = await fetch(`${url}/v1/topics`, { method: 'POST', body: JSON.stringify({ name: 'full', partitions: 1 }) });
    expect(made.status).toBe(201);
    // Something else on the disk takes part of it, as a log file or a neighbour would.
    const hog = path.join(mountPoint, 'hog');
    fs.writeFileSync(hog, Buffer.alloc(6 * MiB));

    const first = await produceUntil(url, 0, 20, 1_000);
    expect(first.acked.length).toBeGreaterThan(10);
    expect(first.refusals.size, 'the disk never filled').toBeGreaterThan(0);
    for (const key of first.refusals.keys()) expect(key).toMatch(/^(503 STORAGE_UNAVAILABLE) retriable=true/);
    expect(await storedNumbers(url)).toEqual(first.acked);
    expect((await fetch(`${url}/livez`)).status).toBe(200);

    // Space returns: the hub takes writes again without a restart.
    fs.rmSync(hog);
    let resumed: Awaited<ReturnType<typeof produceUntil>> | undefined;
    await waitFor(
      async () => {
        resumed = await produceUntil(url, first.next, 1, 5);
        return resumed.acked.length === 5;
      },
      30_000,
      'produce to succeed again after space returned',
    );
    const all = await storedNumbers(url);
    expect(all.slice(0, first.acked.length)).toEqual(first.acked);
    expect(all.slice(first.acked.length).filter((n) => n < first.next)).toEqual([]);

    // And after a restart, everything acknowledged is still there, in order.
    const dataDir = hub!.dataDir;
    await hub!.stop();
    hub = await startHub({ dataDir });
    const afterRestart = await storedNumbers(hub.url);
    expect(afterRestart).toEqual(all);
  });
});
