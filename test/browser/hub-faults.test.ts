/**
 * Exactly once from a page while the hub and the network fail under it:
 * the hub SIGKILLed and restarted during a flush, and a proxy that cuts
 * connections at random points, including inside the hub's ack of a batch it
 * has already appended, and a cut while the IndexedDB store holds a
 * read-ahead. Each test reads the whole topic back and counts.
 */
import { describe, expect, it } from 'vitest';
import { startHub } from '../../harness/hub.ts';
import { createTopic, exactlyOnceProblems, readTopic, until } from '../../harness/browser.ts';
import { useHubBehindProxy } from '../helpers/browser-hub.ts';

const fx = useHubBehindProxy();

describe('browser outbox under hub and network faults', () => {
  it('the hub SIGKILLed and restarted during a flush: every event exactly once', async () => {
    await createTopic(fx.hub.url, 'payments', 3);
    const ctx = await fx.env.context();
    const page = await fx.env.open(ctx);
    // Small batches, one at a time: the flush is still running when the hub dies.
    await page.evaluate((url) => window.tb.start('a', { url, name: 'kill', maxBatchRecords: 25, maxInFlightBatches: 1, backoffInitialMs: 50, backoffMaxMs: 300 }), fx.proxy.wsUrl);
    await page.evaluate(() => window.tb.sendMany('a', 'payments', 0, 3000, 11));
    const flushed = page.evaluate(() => window.tb.flush('a'));
    await until(async () => (await page.evaluate(() => window.tb.stats('a').acks)) >= 5, 20_000, 'first acks');
    await fx.hub.kill();
    const pendingAtKill = await page.evaluate(() => window.tb.pending('a'));
    expect(pendingAtKill).toBeGreaterThan(0);
    const restarted = await startHub({ dataDir: fx.hub.dataDir });
    fx.hub = restarted;
    fx.proxy.retarget(fx.hub.port);
    expect(await flushed).toBe(true);
    expect(await page.evaluate(() => window.tb.pending('a'))).toBe(0);
    expect(exactlyOnceProblems(await readTopic(fx.hub.url, 'payments'), 3000)).toBe('');
    await ctx.close();
  }, 60_000);

  it('connections cut at random points, also between append and ack: every event exactly once', async () => {
    await createTopic(fx.hub.url, 'chat', 2);
    const ctx = await fx.env.context();
    const page = await fx.env.open(ctx);
    fx.proxy.chaos({ minBytes: 200, maxBytes: 6_000, seed: 42 });
    const cutsBefore = fx.proxy.cuts;
    await page.evaluate((url) => window.tb.start('a', { url, name: 'chaos', maxBatchRecords: 50, backoffInitialMs: 10, backoffMaxMs: 100 }), fx.proxy.wsUrl);
    // Sends keep arriving while the drain is being cut.
    for (let round = 0; round < 5; round++) await page.evaluate((from) => window.tb.sendMany('a', 'chat', from, 600, 13), round * 600);
    await page.evaluate(() => window.tb.flush('a'));
    fx.proxy.chaos(undefined);
    expect(await page.evaluate(() => window.tb.stats('a').acks)).toBeGreaterThan(0);
    expect(exactlyOnceProblems(await readTopic(fx.hub.url, 'chat'), 3000)).toBe('');
    expect(fx.proxy.cuts - cutsBefore).toBeGreaterThan(5);
    await ctx.close();
  }, 60_000);

  it('a drain cut while the IndexedDB store holds events read ahead: the next session reads from the store, every event exactly once', async () => {
    await createTopic(fx.hub.url, 'read-ahead', 2);
    const ctx = await fx.env.context();
    const page = await fx.env.open(ctx);
    fx.proxy.block(true);
    // Small batches, one at a time: acks come slower than the store reads, so the drain fills its buffer of
    // 28,000 events and the store (outbox-idb.ts `ahead`) holds up to 12,000 more, read in the same
    // transaction. The cut ends the session with that read-ahead held; the next session starts over from
    // the store and must not be served it (it would skip the unacked events before it: flush would hang).
    await page.evaluate((url) => window.tb.start('a', { url, name: 'read-ahead', maxBatchRecords: 250, maxInFlightBatches: 1, backoffInitialMs: 10, backoffMaxMs: 50 }), fx.proxy.wsUrl);
    for (let from = 0; from < 36_000; from += 12_000) await page.evaluate((from) => window.tb.sendMany('a', 'read-ahead', from, 12_000, 16), from);
    fx.proxy.block(false);
    await until(async () => (await page.evaluate(() => window.tb.stats('a').acks)) >= 3, 20_000, 'first acks');
    fx.proxy.cutAll();
    expect(await page.evaluate(() => window.tb.flush('a'))).toBe(true);
    expect(await page.evaluate(() => window.tb.pending('a'))).toBe(0);
    expect(exactlyOnceProblems(await readTopic(fx.hub.url, 'read-ahead'), 36_000)).toBe('');
    await ctx.close();
  }, 60_000);

  it('an ack lost after the hub appended the batch: the re-sent batch gets its original offsets, nothing twice', async () => {
    await createTopic(fx.hub.url, 'lost-ack', 1);
    const ctx = await fx.env.context();
    const page = await fx.env.open(ctx);
    fx.proxy.block(true);
    await page.evaluate((url) => window.tb.start('a', { url, name: 'lost-ack', maxBatchRecords: 100, maxInFlightBatches: 1, backoffInitialMs: 10, backoffMaxMs: 50 }), fx.proxy.wsUrl);
    await page.evaluate(() => window.tb.sendMany('a', 'lost-ack', 0, 500, 3));
    // The next connection lets the upgrade response, the hello's and the metadata's replies through, then loses the first produce's ack.
    fx.proxy.loseReplyAfter(3);
    fx.proxy.block(false);
    await page.evaluate(() => window.tb.flush('a'));
    const stats = await page.evaluate(() => window.tb.stats('a'));
    expect(stats.duplicateAcks).toBe(1);
    expect(stats.ackedEvents).toBe(500); // the lost ack never arrived; its re-send was answered instead
    const records = await readTopic(fx.hub.url, 'lost-ack');
    expect(exactlyOnceProblems(records, 500)).toBe('');
    expect(records.map((r) => r.offset)).toEqual(Array.from({ length: 500 }, (_, i) => i));
    await ctx.close();
  }, 30_000);
});
