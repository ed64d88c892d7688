/**
 * A page with a token against a hub with auth on and `allowedOrigins` set to
 * the page server's origin: the page's client authenticates and its events
 * reach the log; the same page served from another origin (localhost instead
 * of 127.0.0.1) is refused at the upgrade and appends nothing.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Hub } from '../../harness/hub.ts';
import { gotoTestPage, startBrowserEnv, until, type BrowserEnv } from '../../harness/browser.ts';
import { createTopic, recordCount, refusals, sleep, startAuthHub, token } from '../helpers/auth-hub.ts';

let hub: Hub;
let env: BrowserEnv;

beforeAll(async () => {
  env = await startBrowserEnv();
  hub = await startAuthHub([], { env: { TRIBUTARY_ALLOWED_ORIGINS: new URL(env.pages.url).origin } });
  await createTopic(hub, 'web');
});
afterAll(async () => {
  await env?.close();
  await hub?.stop();
  hub?.cleanup();
});

describe('browser client with auth on', () => {
  it('the allowed origin authenticates with its token and appends; another origin is refused', async () => {
    const jwt = await token({ sub: 'page', tributary: { produce: ['web'], consume: ['web'] }, expInSec: 60 });
    const opts = { url: hub.wsUrl, token: jwt, outbox: 'memory' as const, name: 'auth-page', backoffInitialMs: 50, backoffMaxMs: 200 };

    const ctx = await env.context();
    const page = await env.open(ctx);
    await page.evaluate((o) => window.tb.start('c', o), opts);
    await page.evaluate(() => window.tb.sendMany('c', 'web', 0, 3, 1));
    await page.evaluate(() => window.tb.flush('c'));
    expect(await page.evaluate(() => window.tb.stats('c'))).toMatchObject({ ackedEvents: 3, errors: [] });
    expect(await recordCount(hub, 'web')).toBe(3);

    // Same server, another origin: the hub refuses the upgrade (403 ORIGIN_FORBIDDEN), so the page never opens.
    const before = await refusals(hub, 'origin');
    const other = await ctx.newPage();
    await gotoTestPage(other, env.pages.url.replace('127.0.0.1', 'localhost'));
    await other.evaluate((o) => window.tb.start('c', o), opts);
    await other.evaluate(() => window.tb.sendMany('c', 'web', 3, 2, 1));
    await until(async () => (await refusals(hub, 'origin')) >= before + 2, 5000, 'origin refusals');
    await sleep(300); // proves a negative: the page's retries do not get it open
    const states = await other.evaluate(() => window.tb.stats('c').states);
    expect(states).not.toContain('open');
    expect(await other.evaluate(() => window.tb.pending('c'))).toBe(2);
    expect(await recordCount(hub, 'web')).toBe(3);
    await ctx.close();
  }, 30_000);
});
