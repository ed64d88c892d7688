/**
 * Compaction with a bounded offset map: a log with more distinct keys than
 * one pass may hold is compacted over several passes, never dropping a
 * record unless a newer one of its key exists, and ends with exactly the
 * newest record per key.
 */
import { describe, expect, it } from 'vitest';
import { makeBatch, openStore, readAll, useStoreFixture, valueText } from '../helpers/store.ts';

const fx = useStoreFixture();

describe('compaction with a bounded key map', () => {
  it('converges to the newest record per key over several passes, and never loses a key meanwhile', async () => {
    let now = 80_000_000;
    fx.store = await openStore(fx.dir, { now: () => now, maxCompactionKeys: 4 });
    await fx.store.createTopic('cb', 1, { cleanupPolicy: 'compact', segmentBytes: 1024, deleteRetentionMs: 5_000 });
    const expected = new Map<string, { offset: number; value: string | null }>();
    for (let round = 0; round < 20; round++) {
      const keys = [`k${round % 11}`, `k${(round * 7) % 13}`, `k${(round * 5) % 17}`];
      const values = keys.map((k, i) => (k === 'k4' && round > 10 ? null : `v${round}-${i}`));
      const ack = await fx.store.append('cb', 0, makeBatch({ keys, values }));
      keys.forEach((k, i) => expected.set(k, { offset: ack.offsets[i], value: values[i] }));
      now += 10;
    }
    const end = fx.store.offsets('cb', 0).logEnd;
    for (let i = 0; i < 8; i++) await fx.store.append('cb', 0, makeBatch({ keys: [`z${i}`], values: ['x'.repeat(200)] }));
    for (let i = 0; i < 8; i++) expected.set(`z${i}`, { offset: end + i, value: 'x'.repeat(200) });

    const newestOf = (recs: Awaited<ReturnType<typeof readAll>>) => {
      const m = new Map<string, { offset: number; value: string | null }>();
      for (const r of recs) m.set(r.key as string, { offset: r.offset, value: valueText(r) });
      return m;
    };
    let before = (await readAll(fx.store, 'cb')).length;
    for (let pass = 0; pass < 30; pass++) {
      await fx.store.runCleanup();
      const recs = await readAll(fx.store, 'cb');
      // Whatever a pass did, reading the log still gives every key's newest record.
      expect(newestOf(recs)).toEqual(expected);
      if (recs.length === expected.size) break;
      expect(recs.length).toBeLessThanOrEqual(before);
      before = recs.length;
    }
    const recs = await readAll(fx.store, 'cb');
    expect(recs.length).toBe(expected.size); // exactly one record per key, the tombstone of k4 among them

    now += 10_000; // the tombstone's deleteRetentionMs passes
    for (let pass = 0; pass < 30; pass++) await fx.store.runCleanup();
    const later = await readAll(fx.store, 'cb');
    expect(later.find((r) => r.key === 'k4')).toBeUndefined();
    expect(later.length).toBe(expected.size - 1);
  });
});
