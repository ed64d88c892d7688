import { describe, expect, it } from 'vitest';
import { decodeBatches, readBatchHeader } from '../../protocol/batch.ts';
import { makeBatch, openStore, readAll, useStoreFixture, valueText } from '../helpers/store.ts';

const fx = useStoreFixture();

describe('FileLogStore round trips', () => {
  it('appends and reads back across segment rolls, and again after a restart', async () => {
    fx.store = await openStore(fx.dir);
    await fx.store.createTopic('orders', 2, { segmentBytes: 4096 });
    const acks = [];
    for (let i = 0; i < 60; i++) acks.push(await fx.store.append('orders', 0, makeBatch({ count: 5, tag: `b${i}`, valueBytes: 40 })));
    expect(acks.map((a) => a.baseOffset)).toEqual(Array.from({ length: 60 }, (_, i) => i * 5));
    expect(acks[3].offsets).toEqual([15, 16, 17, 18, 19]);
    const recs = await readAll(fx.store, 'orders', 0);
    expect(recs.map((r) => r.offset)).toEqual(Array.from({ length: 300 }, (_, i) => i));
    expect(valueText(recs[7])!.startsWith('b1-2')).toBe(true);
    expect(fx.store.offsets('orders', 0)).toMatchObject({ earliest: 0, highWatermark: 300, logEnd: 300 });
    expect(fx.store.offsets('orders', 1).logEnd).toBe(0);
    await fx.store.close();
    fx.store = await openStore(fx.dir);
    expect(fx.store.getTopic('orders')).toMatchObject({ partitions: 2, config: { segmentBytes: 4096 } });
    expect(fx.store.offsets('orders', 0)).toMatchObject({ earliest: 0, highWatermark: 300, logEnd: 300 });
    const again = await readAll(fx.store, 'orders', 0);
    expect(again.map((r) => valueText(r))).toEqual(recs.map((r) => valueText(r)));
    const next = await fx.store.append('orders', 0, makeBatch({ count: 2 }));
    expect(next.baseOffset).toBe(300);
  });

  it('a read from any offset returns the batch that contains it, never past the high watermark', async () => {
    fx.store = await openStore(fx.dir, { tailCacheBytes: 0 });
    await fx.store.createTopic('t', 1, { segmentBytes: 2048, fsync: 'never' });
    for (let i = 0; i < 40; i++) await fx.store.append('t', 0, makeBatch({ count: 4, valueBytes: 30 }));
    for (let off = 0; off < 160; off++) {
      const r = await fx.store.read('t', 0, off, 1);
      const h = readBatchHeader(r.bytes);
      expect(h.baseOffset).toBe(off - (off % 4));
      expect(h.sizeBytes).toBe(r.bytes.length);
      expect(r.nextOffset).toBe(h.baseOffset + 4);
    }
    const tip = await fx.store.read('t', 0, 160, 1000);
    expect(tip.bytes.length).toBe(0);
    expect(tip.nextOffset).toBe(160);
    await expect(fx.store.read('t', 0, 161, 1000)).rejects.toMatchObject({ code: 'OFFSET_OUT_OF_RANGE', details: { earliest: 0, logEnd: 160 } });
  });

  it('serves tailing reads from memory with the same bytes as the disk', async () => {
    fx.store = await openStore(fx.dir, { tailCacheBytes: 1 << 20 });
    await fx.store.createTopic('t', 1);
    for (let i = 0; i < 10; i++) await fx.store.append('t', 0, makeBatch({ count: 3, tag: `x${i}` }));
    const mem = await fx.store.read('t', 0, 12, 1 << 20);
    expect(decodeBatches(mem.bytes).map((r) => r.offset)[0]).toBe(12);
    expect(mem.nextOffset).toBe(30);
  });

  it('finds offsets by append time', async () => {
    let now = 1_000_000;
    fx.store = await openStore(fx.dir, { now: () => now, indexIntervalBytes: 256 });
    await fx.store.createTopic('t', 1, { segmentBytes: 2048 });
    for (let i = 0; i < 50; i++) {
      now = 1_000_000 + i * 1000;
      await fx.store.append('t', 0, makeBatch({ count: 2, valueBytes: 20 }));
    }
    expect(await fx.store.offsetForTimestamp('t', 0, 0)).toBe(0);
    expect(await fx.store.offsetForTimestamp('t', 0, 1_000_000)).toBe(0);
    expect(await fx.store.offsetForTimestamp('t', 0, 1_000_001)).toBe(2);
    expect(await fx.store.offsetForTimestamp('t', 0, 1_020_000)).toBe(40);
    expect(await fx.store.offsetForTimestamp('t', 0, 1_049_000)).toBe(98);
    expect(await fx.store.offsetForTimestamp('t', 0, 2_000_000)).toBe(100);
    await fx.store.close();
    fx.store = await openStore(fx.dir, { now: () => now });
    expect(await fx.store.offsetForTimestamp('t', 0, 1_020_500)).toBe(42);
  });

  it('concurrent appends share a commit and get distinct, ordered offsets', async () => {
    fx.store = await openStore(fx.dir);
    await fx.store.createTopic('t', 1);
    const acks = await Promise.all(Array.from({ length: 50 }, (_, i) => fx.store!.append('t', 0, makeBatch({ count: 2, tag: `c${i}` }))));
    expect(acks.map((a) => a.baseOffset)).toEqual(Array.from({ length: 50 }, (_, i) => i * 2));
    const seen: number[] = [];
    fx.store.onDurable((_t, _p, hw) => seen.push(hw));
    await fx.store.append('t', 0, makeBatch({ count: 1 }));
    expect(seen.at(-1)).toBe(101);
  });

  it('validates topics, partitions and batches', async () => {
    fx.store = await openStore(fx.dir);
    await fx.store.createTopic('t', 1);
    await expect(fx.store.createTopic('t', 1)).rejects.toMatchObject({ code: 'TOPIC_EXISTS' });
    await expect(fx.store.createTopic('bad/name', 1)).rejects.toMatchObject({ code: 'BAD_TOPIC_NAME' });
    await expect(fx.store.createTopic('u', 1, { fsync: 'sometimes' as never })).rejects.toMatchObject({ code: 'BAD_CONFIG' });
    await expect(fx.store.append('nope', 0, makeBatch())).rejects.toMatchObject({ code: 'UNKNOWN_TOPIC' });
    await expect(fx.store.append('t', 3, makeBatch())).rejects.toMatchObject({ code: 'BAD_PARTITION' });
    const b = makeBatch();
    b[b.length - 1] ^= 1;
    await expect(fx.store.append('t', 0, b)).rejects.toMatchObject({ code: 'CORRUPT_BATCH' });
    await expect(fx.store.updateTopic('t', { partitions: 0 })).rejects.toMatchObject({ code: 'BAD_CONFIG' });
    const grown = await fx.store.updateTopic('t', { partitions: 3, config: { retentionMs: 1000 } });
    expect(grown).toMatchObject({ partitions: 3, config: { retentionMs: 1000 } });
    await fx.store.append('t', 2, makeBatch());
    await fx.store.deleteTopic('t');
    expect(fx.store.getTopic('t')).toBeUndefined();
    await fx.store.createTopic('t', 1);
    expect(fx.store.offsets('t', 0).logEnd).toBe(0);
  });
});
