import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

import type { FileLogStore } from '../../server/storage/file-log-store.ts';
import { nodeIo, type StorageIo } from '../../server/storage/io.ts';
import { makeBatch, openStore, readAll, useStoreFixture, valueText } from '../helpers/store.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const fx = useStoreFixture();

/**
 * nodeIo with switches that make writes or syncs fail like a full or failing disk. A write through a
 * descriptor opened with O_DSYNC (fsync "always", server/storage/durable-log.ts) is a sync: `failSync` fails it.
 */
function faultyIo(): StorageIo & { failWrites: string | null; failSync: string | null; syncedWrites: number; holdSync: Promise<void> | null; held: number } {
  const dsyncFds = new Set<number>();
  const io = {
    ...nodeIo,
    failWrites: null as string | null,
    failSync: null as string | null,
    syncedWrites: 0,
    /** The next O_DSYNC write waits for this, then fails with EIO having written nothing (a slow, failing write). */
    holdSync: null as Promise<void> | null,
    held: 0,
    async open(file: string, flags: string | number, mode?: number) {
      const fd = await nodeIo.open(file, flags, mode);
      if (typeof flags === 'number' && flags & fs.constants.O_DSYNC) dsyncFds.add(fd);
      return fd;
    },
    async close(fd: number) {
      dsyncFds.delete(fd);
      return nodeIo.close(fd);
    },
    async writev(fd: number, bufs: Uint8Array[], pos: number) {
      if (io.failWrites) throw Object.assign(new Error(`simulated ${io.failWrites}`), { code: io.failWrites });
      if (dsyncFds.has(fd) && io.holdSync) {
        const gate = io.holdSync;
        io.holdSync = null;
        io.held++;
        await gate;
        throw Object.assign(new Error('simulated EIO'), { code: 'EIO' });
      }
      if (dsyncFds.has(fd)) {
        if (io.failSync) throw Object.assign(new Error(`simulated ${io.failSync}`), { code: io.failSync });
        io.syncedWrites++;
      }
      return nodeIo.writev(fd, bufs, pos);
    },
    async fdatasync(fd: number) {
      if (io.failSync) throw Object.assign(new Error(`simulated ${io.failSync}`), { code: io.failSync });
      return nodeIo.fdatasync(fd);
    },
  };
  return io;
}

async function eventually(check: () => Promise<unknown> | unknown, ms = 5000): Promise<void> {
  const until = Date.now() + ms;
  for (;;) {
    try {
      await check();
      return;
    } catch (err) {
      if (Date.now() > until) throw err;
      await new Promise((r) => setTimeout(r, 20));
    }
  }
}

describe('durability', () => {
  it('a failed fdatasync is never acknowledged; the partition refuses appends, re-verifies and recovers by itself', async () => {
    const io = faultyIo();
    fx.store = await openStore(fx.dir, { io });
    await fx.store.createTopic('t', 1);
    await fx.store.append('t', 0, makeBatch({ tag: 'before' }));
    expect(io.syncedWrites).toBe(0); // the first group after open uses fdatasync (a tail kept by recovery may be unsynced); later ones O_DSYNC
    io.failSync = 'EIO';
    const failed = await Promise.allSettled([0, 1, 2].map(() => fx.store!.append('t', 0, makeBatch({ tag: 'lost' }))));
    for (const f of failed) expect(f).toMatchObject({ status: 'rejected', reason: { code: 'STORAGE_UNAVAILABLE', retriable: true } });
    await expect(fx.store.append('t', 0, makeBatch())).rejects.toMatchObject({ code: 'STORAGE_UNAVAILABLE' });
    expect((await readAll(fx.store, 't')).length).toBe(3); // reads keep working
    io.failSync = null;
    await eventually(async () => {
      const ack = await fx.store!.append('t', 0, makeBatch({ tag: 'after' }));
      expect(ack.baseOffset).toBe(3); // the unacknowledged batches were truncated
    });
    const recs = await readAll(fx.store, 't');
    expect(recs.map((r) => valueText(r)!.split('-')[0])).toEqual(['before', 'before', 'before', 'after', 'after', 'after']);
    await fx.store.append('t', 0, makeBatch());
    expect(io.syncedWrites).toBeGreaterThan(0); // after recovery: fdatasync once, then O_DSYNC again
    await fx.store.close();
    fx.store = await openStore(fx.dir);
    expect(fx.store.offsets('t', 0).logEnd).toBe(9);
  });

  it('fsync "always" writes the next groups while one is in flight; a crash or failure of the first never acks those ahead, and the hole is truncated', async () => {
    const { store, io, release, first, synced } = await holdFirstSyncedWrite();
    let laterSettled = 0;
    const second = store.append('t', 0, makeBatch({ tag: 'lost' })).finally(() => laterSettled++);
    // The second group is written while the first is still in flight, at the offset after it: a hole before it on disk.
    await eventually(() => expect(io.syncedWrites).toBe(synced + 1));
    // A third, arriving while both are in flight, is written at once too (two ahead of the one the writer waits for).
    const third = store.append('t', 0, makeBatch({ tag: 'lost' })).finally(() => laterSettled++);
    await eventually(() => expect(io.syncedWrites).toBe(synced + 2));
    await new Promise((r) => setTimeout(r, 50)); // proves a negative: a write that landed is not acked before the one before it
    expect(laterSettled).toBe(0);
    // A crash now (a copy of the directory): recovery stops at the hole, so the batch written past it is dropped.
    const crashDir = fx.dir + '-crash';
    fs.cpSync(fx.dir, crashDir, { recursive: true });
    fs.rmSync(path.join(crashDir, '@lock'), { force: true });
    const crashed = await openStore(crashDir);
    try {
      expect(crashed.offsets('t', 0).logEnd).toBe(6);
      expect((await readAll(crashed, 't')).map((r) => valueText(r)!.split('-')[0])).toEqual(Array(6).fill('before'));
    } finally {
      await crashed.close();
      fs.rmSync(crashDir, { recursive: true, force: true });
    }
    release();
    for (const f of await Promise.allSettled([first, second, third])) expect(f).toMatchObject({ status: 'rejected', reason: { code: 'STORAGE_UNAVAILABLE' } });
    await eventually(async () => expect((await store.append('t', 0, makeBatch({ tag: 'after' }))).baseOffset).toBe(6));
    expect((await readAll(store, 't')).map((r) => valueText(r)!.split('-')[0])).toEqual([...Array(6).fill('before'), ...Array(3).fill('after')]);
  });

  it('fsync "always": batches appended in one loop turn while a write is in flight go out as one write ahead', async () => {
    const { store, io, release, first, synced } = await holdFirstSyncedWrite();
    const together = [0, 1, 2].map(() => store.append('t', 0, makeBatch({ tag: 'lost' })));
    try {
      await eventually(() => expect(io.syncedWrites).toBe(synced + 1));
      await new Promise((r) => setTimeout(r, 50)); // proves a negative: the same turn's batches are not split into more writes
      expect(io.syncedWrites).toBe(synced + 1);
    } finally {
      release();
    }
    for (const f of await Promise.allSettled([first, ...together])) expect(f).toMatchObject({ status: 'rejected', reason: { code: 'STORAGE_UNAVAILABLE' } });
    await eventually(async () => expect((await store.append('t', 0, makeBatch({ tag: 'after' }))).baseOffset).toBe(6));
  });

  it('a failed write (disk full) rejects with STORAGE_UNAVAILABLE until the disk recovers', async () => {
    const io = faultyIo();
    fx.store = await openStore(fx.dir, { io });
    await fx.store.createTopic('t', 1, { fsync: 'never' });
    await fx.store.append('t', 0, makeBatch());
    io.failWrites = 'ENOSPC';
    await expect(fx.store.append('t', 0, makeBatch())).rejects.toMatchObject({ code: 'STORAGE_UNAVAILABLE', details: { cause: 'ENOSPC' } });
    await new Promise((r) => setTimeout(r, 150)); // proves a negative: recovery attempts keep failing while the disk is "full"
    await expect(fx.store.append('t', 0, makeBatch())).rejects.toMatchObject({ code: 'STORAGE_UNAVAILABLE' });
    io.failWrites = null;
    await eventually(async () => expect((await fx.store!.append('t', 0, makeBatch())).baseOffset).toBe(3));
  });

  it('fsync "interval" serves only what was synced; "never" serves what was written', async () => {
    fx.store = await openStore(fx.dir);
    await fx.store.createTopic('i', 1, { fsync: 'interval', fsyncIntervalMs: 50 });
    await fx.store.createTopic('n', 1, { fsync: 'never' });
    await fx.store.append('i', 0, makeBatch());
    await fx.store.append('n', 0, makeBatch());
    expect(fx.store.offsets('n', 0).highWatermark).toBe(3);
    expect(fx.store.offsets('i', 0)).toMatchObject({ logEnd: 3 });
    await eventually(() => expect(fx.store!.offsets('i', 0).highWatermark).toBe(3));
  });

  it('a process killed with SIGKILL while appending with fsync "always" loses no acknowledged batch', async () => {
    const acked = new Map<number, string>();
    for (let round = 0; round < 2; round++) {
      const child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'test/storage/fixtures/appender.ts'), fx.dir], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
      let buf = '';
      let count = 0;
      await new Promise<void>((resolve, reject) => {
        child.on('error', reject);
        child.on('exit', () => resolve());
        child.stdout.on('data', (d: Buffer) => {
          buf += d.toString();
          let nl;
          while ((nl = buf.indexOf('\n')) >= 0) {
            const line = buf.slice(0, nl);
            buf = buf.slice(nl + 1);
            const [kind, off, tag] = line.split(' ');
            if (kind === 'ack') {
              acked.set(Number(off), tag);
              if (++count === 300 + round * 137) child.kill('SIGKILL');
            }
          }
        });
      });
    }
    fx.store = await openStore(fx.dir);
    const recs = await readAll(fx.store, 'k', 0, 0, 1 << 20);
    const byOffset = new Map(recs.map((r) => [r.offset, valueText(r)!]));
    expect(acked.size).toBeGreaterThan(400);
    expect(recs.map((r) => r.offset)).toEqual(recs.map((_, i) => i)); // consistent: no holes
    for (const [off, tag] of acked) expect(byOffset.get(off)?.startsWith(`${tag}/0`)).toBe(true);
  }, 30_000);
});

/** A store whose 3rd append (the first O_DSYNC write, 6 records before it) is held in flight until `release()`. */
async function holdFirstSyncedWrite(): Promise<{ store: FileLogStore; io: ReturnType<typeof faultyIo>; release: () => void; first: Promise<unknown>; synced: number }> {
  const io = faultyIo();
  fx.store = await openStore(fx.dir, { io });
  await fx.store.createTopic('t', 1);
  await fx.store.append('t', 0, makeBatch({ tag: 'before' }));
  await fx.store.append('t', 0, makeBatch({ tag: 'before' })); // O_DSYNC from here on
  let release!: () => void;
  io.holdSync = new Promise<void>((r) => (release = r));
  const first = fx.store.append('t', 0, makeBatch({ tag: 'lost' }));
  await eventually(() => expect(io.held).toBe(1));
  return { store: fx.store, io, release, first, synced: io.syncedWrites };
}
