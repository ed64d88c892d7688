/**
 * A page that is offline from the hub's point of view (the hub cut off
 * through a proxy: Chromium cannot load a page while its context is offline)
 * queues 1,000 sends in IndexedDB, is reloaded, and goes online: every event
 * lands in the log once, per key in send order.
 */
import { describe, expect, it } from 'vitest';
import { createTopic, exactlyOnceProblems, readTopic, reloadTestPage } from '../../harness/browser.ts';
import { useHubBehindProxy } from '../helpers/browser-hub.ts';

const fx = useHubBehindProxy();

describe('browser outbox offline', () => {
  it('1,000 sends offline, a reload, then online: all 1,000 in the log exactly once, per-key order kept', async () => {
    await createTopic(fx.hub.url, 'clicks', 4);
    fx.proxy.block(true);
    const ctx = await fx.env.context();
    const page = await fx.env.open(ctx);
    const opts = { url: fx.proxy.wsUrl, name: 'offline', backoffInitialMs: 50, backoffMaxMs: 250 };

    await page.evaluate((o) => window.tb.start('a', o), opts);
    await page.evaluate(() => window.tb.sendMany('a', 'clicks', 0, 600, 7));
    // Half-way through the sends, the page is reloaded; the rest come from the new document.
    await reloadTestPage(page);
    await page.evaluate((o) => window.tb.start('a', o), opts);
    expect(await page.evaluate(() => window.tb.pending('a'))).toBe(600);
    await page.evaluate(() => window.tb.sendMany('a', 'clicks', 600, 400, 7));
    await reloadTestPage(page);
    await page.evaluate((o) => window.tb.start('a', o), opts);
    expect(await page.evaluate(() => window.tb.pending('a'))).toBe(1000);
    expect(await readTopic(fx.hub.url, 'clicks')).toHaveLength(0);

    fx.proxy.block(false);
    await page.evaluate(() => window.tb.flush('a'));
    expect(await page.evaluate(() => window.tb.pending('a'))).toBe(0);
    expect(exactlyOnceProblems(await readTopic(fx.hub.url, 'clicks'), 1000)).toBe('');
    await ctx.close();
  });
});
