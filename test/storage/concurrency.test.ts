import { describe, expect, it } from 'vitest';
import { makeBatch, openStore, readAll, useStoreFixture, valueText } from '../helpers/store.ts';

const fx = useStoreFixture();

describe('concurrency and bounded resources', () => {
  it('appends, reads, rolls, interval fsyncs and compaction interleave without losing or reordering records', async () => {
    fx.store = await openStore(fx.dir, { maxOpenFiles: 2, tailCacheBytes: 2048, maxIndexCacheBytes: 64 });
    await fx.store.createTopic('i', 2, { fsync: 'interval', fsyncIntervalMs: 5, segmentBytes: 1024 });
    await fx.store.createTopic('c', 1, { cleanupPolicy: 'compact', segmentBytes: 1024 });
    const s = fx.store;
    let stop = false;
    const reader = (async () => {
      let reads = 0;
      while (!stop) {
        const hw = s.offsets('i', 0).highWatermark;
        if (hw > 0) {
          const r = await s.read('i', 0, Math.floor(Math.random() * hw), 512);
          expect(r.nextOffset).toBeLessThanOrEqual(r.highWatermark);
          reads++;
        }
        await new Promise((res) => setImmediate(res));
      }
      return reads;
    })();
    const writers = [0, 1].flatMap((p) =>
      [0, 1, 2].map(async (w) => {
        for (let i = 0; i < 40; i++) await s.append('i', p, makeBatch({ count: 2, tag: `p${p}w${w}i${i}`, valueBytes: 30 }));
      }),
    );
    const compactor = (async () => {
      for (let i = 0; i < 60; i++) {
        await s.append('c', 0, makeBatch({ keys: [`k${i % 4}`], values: [`v${i}`.padEnd(100, '.')] }));
        if (i % 10 === 9) await s.runCleanup();
      }
    })();
    await Promise.all([...writers, compactor]);
    await new Promise((res) => setTimeout(res, 30)); // let the interval fsync catch up
    stop = true;
    expect(await reader).toBeGreaterThan(0);
    for (const p of [0, 1]) {
      const recs = await readAll(s, 'i', p);
      expect(recs.length).toBe(240);
      expect(recs.map((r) => r.offset)).toEqual(recs.map((_, i) => i));
      for (const w of [0, 1, 2]) {
        const mine = recs.filter((r) => valueText(r)!.startsWith(`p${p}w${w}i`)).map((r) => Number(valueText(r)!.split('i')[1].split('-')[0]));
        expect(mine).toEqual(mine.slice().sort((a, b) => a - b)); // per-writer order kept
      }
    }
    const compacted = await readAll(s, 'c');
    const newest = new Map(compacted.map((r) => [r.key, valueText(r)!.replace(/\.+$/, '')]));
    expect(newest).toEqual(
      new Map([
        ['k0', 'v56'],
        ['k1', 'v57'],
        ['k2', 'v58'],
        ['k3', 'v59'],
      ]),
    );
  });
});
