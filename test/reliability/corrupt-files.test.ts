/**
 * Damage on disk found at start-up, not served in silence: a flipped bit in
 * a closed segment, a segment file that is gone, a truncated index. Each
 * hub starts, serves what is intact, and says exactly which offsets are
 * damaged (an error in the log, `degraded` in /healthz,
 * tributary_storage_problems in /metrics). A truncated index is no damage:
 * it is rebuilt and every record still reads back.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHub, tempDir, type Hub } from '../../harness/hub.ts';
import { waitFor } from '../../harness/wait.ts';

const RECORDS = 40;
let pristine: string;
const hubs: Hub[] = [];
const dirs: string[] = [];

async function readValues(url: string, from: number, limit: number): Promise<Array<{ offset: number; value: string }>> {
  const res = await fetch(`${url}/v1/topics/c/partitions/0/records?offset=${from}&limit=${limit}`);
  expect(res.status).toBe(200);
  return ((await res.json()) as { records: Array<{ offset: number; value: string }> }).records;
}

async function health(url: string): Promise<{ status: string; storageProblems?: string[] }> {
  return (await fetch(`${url}/healthz`)).json() as Promise<{ status: string; storageProblems?: string[] }>;
}

async function metric(url: string, name: string): Promise<number> {
  const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(await (await fetch(`${url}/metrics`)).text());
  return m ? Number(m[1]) : NaN;
}

/** A copy of the pristine data directory with `damage` applied to partition c/0, and a hub on it. */
async function hubOnDamagedCopy(damage: (partitionDir: string) => void): Promise<Hub> {
  const dir = tempDir();
  dirs.push(dir);
  fs.cpSync(pristine, dir, { recursive: true });
  fs.rmSync(path.join(dir, '@lock'), { force: true });
  damage(path.join(dir, 'c', '0'));
  const hub = await startHub({ dataDir: dir, env: { TRIBUTARY_LOG_LEVEL: 'info' } });
  hubs.push(hub);
  await waitFor(() => /storage scrub/.test(hub.output()), 20_000, 'the start-up scrub to finish');
  return hub;
}

const segment = (dir: string, base: number, ext: string) => path.join(dir, `${String(base).padStart(20, '0')}.${ext}`);

beforeAll(async () => {
  const hub = await startHub();
  const made = await fetch(`${hub.url}/v1/topics`, { method: 'POST', body: JSON.stringify({ name: 'c', partitions: 1, config: { segmentBytes: 4096 } }) });
  expect(made.status).toBe(201);
  for (let n = 0; n < RECORDS; n++) {
    const res = await fetch(`${hub.url}/v1/topics/c/records`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ records: [{ value: `record-${n}-${'y'.repeat(300)}` }] }),
    });
    expect(res.status).toBe(200);
  }
  await hub.stop();
  pristine = hub.dataDir;
  dirs.push(pristine);
  // 40 records of ~385 bytes in 4 KiB segments: bases 0, 10, 20, 30 (the last one active).
  expect(fs.existsSync(segment(path.join(pristine, 'c', '0'), 10, 'log'))).toBe(true);
});

afterAll(async () => {
  for (const h of hubs) await h.stop().catch(() => undefined);
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

describe('corrupt files at start-up', () => {
  it('a flipped bit in a closed segment is reported with the offsets of its batch; the rest is served', async () => {
    const hub = await hubOnDamagedCopy((dir) => {
      const file = segment(dir, 10, 'log');
      const b = fs.readFileSync(file);
      b[2000] ^= 0x10;
      fs.writeFileSync(file, b);
    });
    const h = await health(hub.url);
    expect(h.status).toBe('degraded');
    expect(h.storageProblems!.join('\n')).toMatch(/c\/0: batch at byte \d+ of 00000000000000000010\.log \(offsets 1\d–1\d\) fails its CRC check/);
    expect(await metric(hub.url, 'tributary_storage_problems')).toBe(1);
    expect(hub.output()).toMatch(/storage damage/);
    expect((await readValues(hub.url, 20, 5)).map((r) => r.offset)).toEqual([20, 21, 22, 23, 24]);
  });

  it('a missing segment is reported as the offsets it held, not skipped in silence', async () => {
    const hub = await hubOnDamagedCopy((dir) => {
      for (const ext of ['log', 'index', 'timeindex']) fs.rmSync(segment(dir, 10, ext), { force: true });
    });
    const h = await health(hub.url);
    expect(h.status).toBe('degraded');
    expect(h.storageProblems).toEqual([expect.stringMatching(/c\/0: offsets 10–19 are missing/)]);
    expect(await metric(hub.url, 'tributary_storage_problems')).toBe(1);
    expect((await readValues(hub.url, 0, 10)).map((r) => r.offset)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  });

  it('a truncated or missing index is rebuilt: healthy, and every record reads back', async () => {
    const hub = await hubOnDamagedCopy((dir) => {
      fs.truncateSync(segment(dir, 20, 'timeindex'), 5);
      fs.truncateSync(segment(dir, 20, 'index'), 3);
      fs.rmSync(segment(dir, 10, 'index'));
      fs.rmSync(segment(dir, 30, 'index'));
    });
    expect(await health(hub.url)).toEqual({ status: 'ok' });
    expect(await metric(hub.url, 'tributary_storage_problems')).toBe(0);
    const all = await readValues(hub.url, 0, 1000);
    expect(all.map((r) => r.offset)).toEqual(Array.from({ length: RECORDS }, (_, i) => i));
    expect(all.every((r, i) => r.value.startsWith(`record-${i}-`))).toBe(true);
    const mid = await readValues(hub.url, 25, 1);
    expect(mid[0].offset).toBe(25);
  });
});
