import { describe, expect, it } from 'vitest';
import { decodeBatches } from '../../protocol/batch.ts';
import { nodeIo, type StorageIo } from '../../server/storage/io.ts';
import { makeBatch, openStore, readAll, useStoreFixture, valueText } from '../helpers/store.ts';

const fx = useStoreFixture();

/** A batch of 100 records of ~130 bytes: large enough (> 8 KiB) for pooled write memory. */
const big = (tag: string): Uint8Array => makeBatch({ count: 100, tag, valueBytes: 120 });

/** Appends `batch` as a transport would: the bytes are overwritten as soon as the call returns (uWS frees the frame). */
function appendFrame(topic: string, batch: Uint8Array): Promise<unknown> {
  const frame = Buffer.from(batch);
  const p = fx.store!.appendBorrowed(topic, 0, frame);
  // The engine stamps offsets into its own copy: the borrowed bytes are never written.
  expect(frame.equals(batch)).toBe(true);
  frame.fill(0xee);
  return p;
}

describe('appendBorrowed (bytes valid only during the call)', () => {
  it('keeps what the caller had when the call returned, and gives every pooled write buffer back', async () => {
    fx.store = await openStore(fx.dir);
    await fx.store.createTopic('t', 1, { fsync: 'always', segmentBytes: 64 << 10 });
    const acks: unknown[] = [];
    for (let i = 0; i < 30; i++) acks.push(appendFrame('t', big(`b${i}`)));
    await Promise.all(acks);
    expect(fx.store.writeBuffersLent).toBe(0);
    const recs = await readAll(fx.store, 't');
    expect(recs.map((r) => r.offset)).toEqual(Array.from({ length: 3000 }, (_, i) => i));
    expect(recs.map((r) => valueText(r))).toEqual(Array.from({ length: 3000 }, (_, i) => `b${Math.floor(i / 100)}-${i % 100}`.padEnd(120, '.')));
    await fx.store.close();
    fx.store = await openStore(fx.dir);
    expect((await readAll(fx.store, 't')).map((r) => valueText(r))).toEqual(recs.map((r) => valueText(r)));
  });

  it('fills the tail cache only while the partition is read, without a gap', async () => {
    fx.store = await openStore(fx.dir, { tailCacheBytes: 1 << 20 });
    await fx.store.createTopic('t', 1);
    for (let i = 0; i < 3; i++) await appendFrame('t', big(`a${i}`));
    // Nobody read the partition: the batches went through reused write memory and the cache holds none of them.
    expect(fx.store.readCached('t', 0, 0, 1 << 20)).toBeNull();
    // That read counts: from now on the appends are cached, from the first one on.
    for (let i = 0; i < 3; i++) await appendFrame('t', big(`c${i}`));
    expect(fx.store.readCached('t', 0, 250, 1 << 20)).toBeNull();
    const cached = fx.store.readCached('t', 0, 300, 1 << 20)!;
    expect(cached).toMatchObject({ nextOffset: 600, highWatermark: 600 });
    const disk = await fx.store.read('t', 0, 300, 1 << 20);
    expect(Buffer.from(cached.bytes).equals(Buffer.from(disk.bytes))).toBe(true);
    expect(decodeBatches(cached.bytes).map((r) => valueText(r))).toEqual(Array.from({ length: 300 }, (_, i) => `c${Math.floor(i / 100)}-${i % 100}`.padEnd(120, '.')));
    expect((await readAll(fx.store, 't')).map((r) => r.offset)).toEqual(Array.from({ length: 600 }, (_, i) => i));
    expect(fx.store.writeBuffersLent).toBe(0);
  });

  it('gives pooled buffers back when their write fails', async () => {
    let fail = false;
    const io: StorageIo = {
      ...nodeIo,
      async writev(fd, bufs, pos) {
        if (fail) throw Object.assign(new Error('simulated ENOSPC'), { code: 'ENOSPC' });
        return nodeIo.writev(fd, bufs, pos);
      },
    };
    fx.store = await openStore(fx.dir, { io });
    await fx.store.createTopic('t', 1, { fsync: 'never' });
    await appendFrame('t', big('ok'));
    fail = true;
    const failed = [appendFrame('t', big('x')), appendFrame('t', big('y'))];
    for (const p of failed) await expect(p).rejects.toMatchObject({ code: 'STORAGE_UNAVAILABLE' });
    expect(fx.store.writeBuffersLent).toBe(0);
  });
});
