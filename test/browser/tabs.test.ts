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

  it('sends gathered on the direct path while another tab filled the outbox: OUTBOX_FULL, none stored, the next send counts right', async () => {
    const ctx = await env.context();
    const [a, b] = [await env.open(ctx), await env.open(ctx)];
    // Offline (nobody listens there): the outbox only fills.
    const opts = { url: 'ws://127.0.0.1:9/v1/ws', name: 'shared-full', maxOutboxEvents: 10, maxBlockMs: 0, backoffInitialMs: 60_000 };
    const start = (o: typeof opts) => {
      const g = globalThis as unknown as { full?: ReturnType<typeof window.T.createClient> };
      g.full = window.T.createClient(o);
      return g.full.pending(); // open: its counters read (0)
    };
    expect(await a.evaluate(start, opts)).toBe(0);
    expect(await b.evaluate(start, opts)).toBe(0);
    const sendMany = (n: number) => {
      const c = (globalThis as unknown as { full: ReturnType<typeof window.T.createClient> }).full;
      const events = Array.from({ length: n }, (_, i) => ({ key: `k${i}`, value: { i } }));
      return c.sendMany('tabs-full', events).then(
        () => 'ok',
        (e: { code?: string }) => e.code ?? String(e),
      );
    };
    expect(await b.evaluate(sendMany, 8)).toBe('ok');
    // A last read 0 events: its estimate lets 5 in, its transaction finds 8 there and writes nothing.
    expect(await a.evaluate(sendMany, 5)).toBe('OUTBOX_FULL');
    const pending = () => (globalThis as unknown as { full: ReturnType<typeof window.T.createClient> }).full.pending();
    expect(await a.evaluate(pending)).toBe(8);
    // That transaction read 8: two more fit, a third does not.
    expect(await a.evaluate(sendMany, 2)).toBe('ok');
    expect(await a.evaluate(sendMany, 1)).toBe('OUTBOX_FULL');
    expect(await b.evaluate(pending)).toBe(10);
    await ctx.close();
  });
});
