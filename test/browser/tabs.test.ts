/**
 * Two tabs of one origin share one IndexedDB outbox. Only the tab holding
 * the Web Lock drains; when it is closed in the middle of draining, the other
 * takes over: every event of both tabs reaches the log once, nothing stranded.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHub, type Hub } from '../../harness/hub.ts';
import { createTopic, exactlyOnceProblems, readTopic, startBrowserEnv, until, type BrowserEnv } from '../../harness/browser.ts';

let hub: Hub;
let env: BrowserEnv;

beforeAll(async () => {
  [hub, env] = await Promise.all([startHub(), startBrowserEnv()]);
});
afterAll(async () => {
  await env?.close();
  await hub?.stop();
  hub?.cleanup();
});

describe('browser outbox shared by tabs', () => {
  it('two tabs send at once, the draining one is closed mid-drain: every event exactly once', async () => {
    await createTopic(hub.url, 'tabs', 3);
    const ctx = await env.context();
    const [a, b] = [await env.open(ctx), await env.open(ctx)];
    // Small batches, one in flight: the drain takes long enough to be interrupted.
    const opts = { url: hub.wsUrl, name: 'shared', maxBatchRecords: 10, maxInFlightBatches: 1 };
    await a.evaluate((o) => window.tb.start('t', o), opts);
    await until(async () => (await a.evaluate(() => window.tb.state('t'))) === 'open', 10_000, 'tab A connected');
    await a.evaluate(() => window.tb.pending('t')); // A's outbox is open: its lock request is queued first
    await b.evaluate((o) => window.tb.start('t', o), opts);

    // Both tabs send at the same time into the same outbox (own keys, so per-key order is checkable).
    await Promise.all([a.evaluate(() => window.tb.sendMany('t', 'tabs', 0, 1000, 5, 'a')), b.evaluate(() => window.tb.sendMany('t', 'tabs', 1000, 1000, 5, 'b'))]);
    await until(async () => (await a.evaluate(() => window.tb.stats('t').acks)) >= 5, 10_000, 'tab A draining');
    expect((await b.evaluate(() => window.tb.stats('t'))).acks).toBe(0); // B waits for the lock

    const left = await b.evaluate(() => window.tb.pending('t'));
    await a.close(); // mid-drain
    expect(left).toBeGreaterThan(100);
    expect(await b.evaluate(() => window.tb.flush('t'))).toBe(true);
    expect(await b.evaluate(() => window.tb.pending('t'))).toBe(0);
    expect((await b.evaluate(() => window.tb.stats('t'))).acks).toBeGreaterThan(0);
    expect(exactlyOnceProblems(await readTopic(hub.url, 'tabs'), 2000)).toBe('');
    await ctx.close();
  }, 60_000);

  it('a flush() in a tab that does not drain resolves when the draining tab has sent its events', async () => {
    await createTopic(hub.url, 'tabs-flush', 1);
    const ctx = await env.context();
    const [a, b] = [await env.open(ctx), await env.open(ctx)];
    const opts = { url: hub.wsUrl, name: 'shared-flush' };
    await a.evaluate((o) => window.tb.start('t', o), opts);
    await until(async () => (await a.evaluate(() => window.tb.state('t'))) === 'open', 10_000, 'tab A connected');
    await a.evaluate(() => window.tb.pending('t')); // A's outbox is open: its lock request is queued first
    await b.evaluate((o) => window.tb.start('t', o), opts);
    await b.evaluate(() => window.tb.sendMany('t', 'tabs-flush', 0, 300, 3));
    expect(await b.evaluate(() => window.tb.flush('t'))).toBe(true);
    expect((await b.evaluate(() => window.tb.stats('t'))).acks).toBe(0);
    expect(exactlyOnceProblems(await readTopic(hub.url, 'tabs-flush'), 300)).toBe('');
    await ctx.close();
  });
});
