import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { makeBatch, openStore, readAll, useStoreFixture, valueText } from '../helpers/store.ts';

const fx = useStoreFixture();

const logFiles = (topic: string) => fs.readdirSync(path.join(fx.dir, topic, '0')).filter((f) => f.endsWith('.log'));

describe('retention', () => {
  it('deletes closed segments older than retentionMs and moves the earliest offset', async () => {
    let now = 10_000_000;
    fx.store = await openStore(fx.dir, { now: () => now });
    await fx.store.createTopic('t', 1, { segmentBytes: 2048, retentionMs: 60_000 });
    for (let i = 0; i < 30; i++) {
      now += 1000;
      await fx.store.append('t', 0, makeBatch({ count: 4, valueBytes: 40 }));
    }
    const before = logFiles('t').length;
    expect(before).toBeGreaterThan(3);
    await fx.store.runCleanup();
    expect(logFiles('t').length).toBe(before); // nothing is older than a minute yet
    now += 45_000; // the oldest segments are now older than 60 s
    await fx.store.runCleanup();
    const after = logFiles('t').length;
    expect(after).toBeLessThan(before);
    expect(after).toBeGreaterThan(1);
    const earliest = fx.store.offsets('t', 0).earliest;
    expect(earliest).toBeGreaterThan(0);
    expect(logFiles('t')[0]).toBe(String(earliest).padStart(20, '0') + '.log');
    await expect(fx.store.read('t', 0, 0, 100)).rejects.toMatchObject({ code: 'OFFSET_OUT_OF_RANGE', details: { earliest } });
    expect((await readAll(fx.store, 't'))[0].offset).toBe(earliest);
    now += 10_000_000;
    await fx.store.runCleanup();
    expect(logFiles('t').length).toBe(1); // the active segment stays
    const kept = fx.store.offsets('t', 0);
    expect(kept.earliest).toBe(Number(logFiles('t')[0].slice(0, 20)));
    await fx.store.close();
    fx.store = await openStore(fx.dir, { now: () => now });
    expect(fx.store.offsets('t', 0)).toEqual(kept);
  });

  it('deletes the oldest closed segments while the partition is larger than retentionBytes', async () => {
    fx.store = await openStore(fx.dir);
    await fx.store.createTopic('t', 1, { segmentBytes: 2048, retentionBytes: 5000 });
    for (let i = 0; i < 40; i++) await fx.store.append('t', 0, makeBatch({ count: 4, valueBytes: 40 }));
    expect(fx.store.offsets('t', 0).bytes).toBeGreaterThan(5000);
    await fx.store.runCleanup();
    const o = fx.store.offsets('t', 0);
    expect(o.bytes).toBeLessThanOrEqual(5000);
    expect(o.earliest).toBeGreaterThan(0);
    expect(o.logEnd).toBe(160);
    expect((await readAll(fx.store, 't')).length).toBe(160 - o.earliest);
  });
});

describe('compaction', () => {
  it('keeps exactly the newest record per key, offsets unchanged, tombstones dropped after deleteRetentionMs', async () => {
    let now = 50_000_000;
    fx.store = await openStore(fx.dir, { now: () => now });
    await fx.store.createTopic('c', 1, { cleanupPolicy: 'compact', segmentBytes: 1024, deleteRetentionMs: 10_000 });
    const expected = new Map<string, { offset: number; value: string | null }>();
    let n = 0;
    for (let round = 0; round < 12; round++) {
      const keys = [`k${round % 5}`, `k${(round * 3) % 7}`, `k${round % 2}`];
      const values = keys.map((k, i) => (k === 'k3' && round > 6 ? null : `v${round}-${i}`));
      const ack = await fx.store.append('c', 0, makeBatch({ keys, values }));
      keys.forEach((k, i) => expected.set(k, { offset: ack.offsets[i], value: values[i] }));
      n += 3;
      now += 100;
    }
    // A few more batches to roll the segment holding the newest values into the closed set.
    for (let i = 0; i < 8; i++) await fx.store.append('c', 0, makeBatch({ keys: [`z${i}`], values: ['x'.repeat(200)] }));
    for (let i = 0; i < 8; i++) expected.set(`z${i}`, { offset: n + i, value: 'x'.repeat(200) });
    await fx.store.runCleanup();
    const recs = await readAll(fx.store, 'c');
    const got = new Map(recs.map((r) => [r.key as string, { offset: r.offset, value: valueText(r) }]));
    expect(got).toEqual(expected); // newest per key, tombstone of k3 still there
    expect(recs.length).toBe(expected.size);
    expect(fx.store.offsets('c', 0).logEnd).toBe(n + 8);
    now += 20_000;
    await fx.store.runCleanup();
    const later = await readAll(fx.store, 'c');
    expect(later.find((r) => r.key === 'k3')).toBeUndefined();
    expect(later.length).toBe(expected.size - 1);
    // Reads at offsets inside compacted-away gaps land on the next batch.
    const r = await fx.store.read('c', 0, 1, 1);
    expect(r.bytes.length).toBeGreaterThan(0);
    await fx.store.close();
    fx.store = await openStore(fx.dir, { now: () => now });
    expect((await readAll(fx.store, 'c')).map((x) => x.offset)).toEqual(later.map((x) => x.offset));
  });
});
