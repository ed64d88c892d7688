/**
 * Storage scenario: FileLogStore appends of 100-record batches (100-byte
 * values) with fsync "always" (one and several appends in flight: group
 * commit) and "never", a full sequential read from disk, and beside them the
 * raw limits of the same disk: plain sequential positional fs.write of the
 * same batch bytes, with and without an fdatasync after every write.
 * Runs alone:
 *   node --import tsx bench/storage.ts [--quick]
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { encodeBatch } from '../protocol/batch.ts';
import { FileLogStore } from '../server/storage/file-log-store.ts';
import { nativeCrc32c } from '../server/storage/native-crc.ts';

export interface StorageResult {
  scenario: 'storage';
  system: string;
  eventsPerSec: number;
  mbPerSec: number;
  notes?: string;
}

const RECORDS = 100;
const VALUE_BYTES = 100;

function template(): Uint8Array {
  const records = Array.from({ length: RECORDS }, (_, i) => ({
    key: `key-${i % 10}`,
    value: new Uint8Array(VALUE_BYTES).fill(i & 0xff),
    encoding: 'bytes' as const,
    headers: [],
    timestamp: 1_700_000_000_000 + i,
  }));
  return encodeBatch({ records }, nativeCrc32c);
}

function result(system: string, batches: number, bytesPerBatch: number, ms: number, notes: string): StorageResult {
  const s = ms / 1000;
  return { scenario: 'storage', system, eventsPerSec: (batches * RECORDS) / s, mbPerSec: (batches * bytesPerBatch) / s / 1e6, notes };
}

const write = (fd: number, b: Uint8Array, pos: number) => new Promise<void>((res, rej) => fs.write(fd, b, 0, b.length, pos, (e) => (e ? rej(e) : res())));
const fdatasync = (fd: number) => new Promise<void>((res, rej) => fs.fdatasync(fd, (e) => (e ? rej(e) : res())));

/** Raw limit: one writer, sequential positional writes of the same batch bytes (optionally fdatasync each). */
async function rawWrite(dir: string, batch: Uint8Array, batches: number, sync: boolean): Promise<number> {
  const file = path.join(dir, `raw-${sync ? 'sync' : 'nosync'}.bin`);
  const fd = fs.openSync(file, 'w');
  const start = performance.now();
  let pos = 0;
  for (let i = 0; i < batches; i++) {
    await write(fd, batch, pos);
    if (sync) await fdatasync(fd);
    pos += batch.length;
  }
  const ms = performance.now() - start;
  fs.closeSync(fd);
  fs.rmSync(file);
  return ms;
}

/** FileLogStore appends with `inFlight` concurrent appenders; each append gets its own copy (the engine owns it). */
async function engineAppend(dir: string, batch: Uint8Array, batches: number, fsync: 'always' | 'never', inFlight: number): Promise<{ ms: number; store: FileLogStore }> {
  const store = new FileLogStore({ dataDir: dir, cleanupIntervalMs: 0, tailCacheBytes: 0 });
  await store.open();
  await store.createTopic('bench', 1, { fsync });
  let next = 0;
  const start = performance.now();
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (next < batches) {
        next++;
        await store.append('bench', 0, Buffer.from(batch));
      }
    }),
  );
  return { ms: performance.now() - start, store };
}

async function fullRead(store: FileLogStore): Promise<{ ms: number; bytes: number; events: number }> {
  const start = performance.now();
  let offset = 0;
  let bytes = 0;
  const hw = store.offsets('bench', 0).highWatermark;
  while (offset < hw) {
    const r = await store.read('bench', 0, offset, 1 << 20);
    bytes += r.bytes.length;
    offset = r.nextOffset;
  }
  return { ms: performance.now() - start, bytes, events: offset };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/**
 * fdatasync latency on shared or virtual disks swings by 10x from second to
 * second, so every measurement runs in several rounds, the systems
 * interleaved within a round, and the median per system is reported.
 */
export async function runStorageBench(opts: { quick: boolean }): Promise<StorageResult[]> {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'tributary-bench-storage-'));
  const batch = template();
  const size = batch.length;
  const nSync = opts.quick ? 200 : 1000;
  const nFast = opts.quick ? 3000 : 20000;
  const rounds = opts.quick ? 3 : 5;
  const ms = new Map<string, number[]>();
  const note = (k: string, v: number) => ms.set(k, [...(ms.get(k) ?? []), v]);
  let n = 0;
  const fresh = () => path.join(root, String(n++));
  let readResult: { ms: number; bytes: number; events: number } | null = null;
  try {
    for (let round = 0; round < rounds; round++) {
      note('raw fs.write', await rawWrite(root, batch, nFast, false));
      let r = await engineAppend(fresh(), batch, nFast, 'never', 1);
      note('FileLogStore fsync=never', r.ms);
      await r.store.close();
      r = await engineAppend(fresh(), batch, nFast, 'never', 8);
      note('FileLogStore fsync=never x8', r.ms);
      await r.store.close();
      if (round === 0) {
        // Full sequential read from disk (tail cache off), after a reopen so nothing is warm in the engine.
        const readStore = new FileLogStore({ dataDir: path.join(root, String(n - 1)), cleanupIntervalMs: 0, tailCacheBytes: 0 });
        await readStore.open();
        readResult = await fullRead(readStore);
        await readStore.close();
      }
      note('raw fs.write+fdatasync', await rawWrite(root, batch, nSync, true));
      r = await engineAppend(fresh(), batch, nSync, 'always', 1);
      note('FileLogStore fsync=always', r.ms);
      await r.store.close();
      r = await engineAppend(fresh(), batch, nSync * 4, 'always', 8);
      note('FileLogStore fsync=always x8', r.ms / 4);
      await r.store.close();
      for (const d of fs.readdirSync(root)) fs.rmSync(path.join(root, d), { recursive: true, force: true });
    }
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
  const notes: Record<string, [number, string]> = {
    'raw fs.write': [nFast, `one writer, sequential positional writes of ${size}-byte batches, no sync`],
    'raw fs.write+fdatasync': [nSync, 'one writer, one fdatasync per write'],
    'FileLogStore fsync=never': [nFast, '1 append in flight'],
    'FileLogStore fsync=never x8': [nFast, '8 appends in flight'],
    'FileLogStore fsync=always': [nSync, '1 append in flight: one fdatasync per batch'],
    'FileLogStore fsync=always x8': [nSync, '8 appends in flight: group commit'],
  };
  const out: StorageResult[] = [];
  for (const [system, [batches, text]] of Object.entries(notes)) out.push(result(system, batches, size, median(ms.get(system)!), `${text}; median of ${rounds}`));
  if (readResult)
    out.push({
      scenario: 'storage',
      system: 'FileLogStore full read',
      eventsPerSec: readResult.events / (readResult.ms / 1000),
      mbPerSec: readResult.bytes / (readResult.ms / 1000) / 1e6,
      notes: '1 MiB reads from offset 0 after a reopen (OS page cache warm)',
    });
  return out;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const results = await runStorageBench({ quick: process.argv.includes('--quick') });
  const raw = results.find((x) => x.system === 'raw fs.write')!;
  const rawSync = results.find((x) => x.system === 'raw fs.write+fdatasync')!;
  console.table(
    results.map((x) => ({
      system: x.system,
      'events/s': Math.round(x.eventsPerSec).toLocaleString('en'),
      'MB/s': x.mbPerSec.toFixed(1),
      'vs raw': x.system.includes('always')
        ? `${((100 * x.eventsPerSec) / rawSync.eventsPerSec).toFixed(0)}% of raw+sync`
        : x.system.includes('never')
          ? `${((100 * x.eventsPerSec) / raw.eventsPerSec).toFixed(0)}% of raw`
          : '',
      notes: x.notes ?? '',
    })),
  );
}
