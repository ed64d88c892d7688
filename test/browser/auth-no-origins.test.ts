/**
 * The first hour with auth on: a hub given a secret and no `allowedOrigins`
 * starts; clients that send no Origin (a Node service) and the hub's own
 * pages (same origin) are served; a page of another origin is refused at the
 * upgrade, with a log line that names the setting to change.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { startHub, type Hub } from '../../harness/hub.ts';
import { startBrowserEnv, until, type BrowserEnv } from '../../harness/browser.ts';
import { AUDIENCE, SECRET, createTopic, recordCount, refusals, sleep, token } from '../helpers/auth-hub.ts';
import { createClient } from '../../web-client/index.ts';

let hub: Hub;
let env: BrowserEnv;

beforeAll(async () => {
  env = await startBrowserEnv();
  hub = await startHub({ env: { TRIBUTARY_AUTH_SECRET: SECRET, TRIBUTARY_AUTH_AUDIENCE: AUDIENCE, TRIBUTARY_LOG_LEVEL: 'info' } });
  await createTopic(hub, 'first-hour');
});
afterAll(async () => {
  await env?.close();
  await hub?.stop();
  hub?.cleanup();
});

/** Status of a WebSocket upgrade sent with this Origin header (101 when it opened). */
function upgradeStatus(origin: string | undefined): Promise<number> {
  return new Promise((resolve) => {
    const ws = new WebSocket(hub.wsUrl, 'tributary.v1', origin ? { origin } : {});
    ws.on('open', () => {
      ws.close();
      resolve(101);
    });
    ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
    ws.on('error', () => undefined);
  });
}

describe('auth on, no allowedOrigins', () => {
  it('starts, and says in its log which browser pages it serves', () => {
    expect(hub.output()).toMatch(/no allowedOrigins: clients without an Origin/);
  });

  it('serves a Node client (no Origin) and the same origin; refuses another origin', async () => {
    const jwt = await token({ sub: 'svc', tributary: { produce: ['first-hour'], consume: ['first-hour'] } });
    const c = createClient({ url: hub.wsUrl, token: jwt, outbox: 'memory', name: `fh-${Math.random()}` });
    await c.send('first-hour', { value: { n: 1 } });
    await c.flush();
    await c.close();
    expect(await recordCount(hub, 'first-hour')).toBe(1);
    expect(await upgradeStatus(undefined)).toBe(101);
    expect(await upgradeStatus(`http://127.0.0.1:${hub.port}`)).toBe(101);
    expect(await upgradeStatus('https://elsewhere.example')).toBe(403);
  });

  it('refuses a cross-origin page in Chromium, logging the setting to change', async () => {
    const jwt = await token({ sub: 'page', tributary: { produce: ['first-hour'] }, expInSec: 60 });
    const before = await refusals(hub, 'origin');
    const ctx = await env.context();
    const page = await env.open(ctx);
    await page.evaluate((o) => window.tb.start('c', o), { url: hub.wsUrl, token: jwt, outbox: 'memory' as const, name: 'fh-page', backoffInitialMs: 50, backoffMaxMs: 200 });
    await page.evaluate(() => window.tb.sendMany('c', 'first-hour', 10, 2, 1));
    await until(async () => (await refusals(hub, 'origin')) >= before + 1, 5000, 'origin refusals');
    await sleep(300); // proves a negative: the page's retries do not get it open
    expect(await page.evaluate(() => window.tb.stats('c').states)).not.toContain('open');
    expect(await page.evaluate(() => window.tb.pending('c'))).toBe(2);
    expect(await recordCount(hub, 'first-hour')).toBe(1);
    const origin = new URL(env.pages.url).origin;
    expect(hub.output()).toContain(`origin \\"${origin}\\" is not allowed: with auth on and no allowedOrigins`);
    expect(hub.output()).toMatch(/TRIBUTARY_ALLOWED_ORIGINS/);
    await ctx.close();
  }, 30_000);
});
