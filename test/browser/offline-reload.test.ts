/**
 * A page that is offline from the hub's point of view (the hub cut off
 * through a proxy: Chromium cannot load a page while its context is offline)
 * queues 1,000 sends in IndexedDB, is reloaded, and goes online: every event
 * lands in the log once, per key in send order.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHub, type Hub } from '../helpers/hub.ts';
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy.ts';
import { createTopic, exactlyOnceProblems, readTopic, reloadTestPage, startBrowserEnv, type BrowserEnv } from '../helpers/browser.ts';

let hub: Hub;
let proxy: TcpProxy;
let env: BrowserEnv;

beforeAll(async () => {
  [hub, env] = await Promise.all([startHub(), startBrowserEnv()]);
  proxy = await startTcpProxy(hub.port);
});
afterAll(async () => {
  await env?.close();
  await proxy?.close();
  await hub?.stop();
  hub?.cleanup();
});

describe('browser outbox offline', () => {
  it('1,000 sends offline, a reload, then online: all 1,000 in the log exactly once, per-key order kept', async () => {
    await createTopic(hub.url, 'clicks', 4);
    proxy.block(true);
    const ctx = await env.context();
    const page = await env.open(ctx);
    const opts = { url: proxy.wsUrl, name: 'offline', backoffInitialMs: 50, backoffMaxMs: 250 };

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
    expect(await readTopic(hub.url, 'clicks')).toHaveLength(0);

    proxy.block(false);
    await page.evaluate(() => window.tb.flush('a'));
    expect(await page.evaluate(() => window.tb.pending('a'))).toBe(0);
    expect(exactlyOnceProblems(await readTopic(hub.url, 'clicks'), 1000)).toBe('');
    await ctx.close();
  });
});
