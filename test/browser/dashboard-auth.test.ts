/**
 * The dashboard against a hub with auth on: the page asks for a token,
 * signs in with it (HTTP API and WebSocket both carry it), shows what the
 * token may read, and says so when a token is refused. The hub's own
 * origin is in allowedOrigins, as the README tells operators to set it.
 */
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser } from 'playwright-core';
import { launchChromium, until } from '../../harness/browser.ts';
import type { Hub } from '../../harness/hub.ts';
import { adminToken, startAuthHub, token } from '../helpers/auth-hub.ts';
import { screenshotPath } from '../helpers/screenshots.ts';

let hub: Hub;
let browser: Browser;
let admin: string;

/** A free loopback port, so the hub's origin is known before it starts. */
async function freePort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise((r) => srv.close(r));
  return port;
}

async function call(method: string, pathname: string, body?: unknown): Promise<Response> {
  return fetch(`${hub.url}${pathname}`, { method, headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
}

beforeAll(async () => {
  const port = await freePort();
  hub = await startAuthHub([], { port, env: { TRIBUTARY_ALLOWED_ORIGINS: `http://127.0.0.1:${port}` } });
  browser = await launchChromium();
  admin = await adminToken();
  expect((await call('POST', '/v1/topics', { name: 'sensors', partitions: 1 })).status).toBe(201);
  expect((await call('POST', '/v1/topics', { name: 'secret', partitions: 1 })).status).toBe(201);
  expect((await call('POST', '/v1/topics/sensors/records', { records: [{ value: { t: 1 } }, { value: { t: 2 } }] })).status).toBe(200);
});

afterAll(async () => {
  await browser?.close();
  await hub?.stop();
  hub?.cleanup();
});

describe('dashboard with auth on', () => {
  it('asks for a token, then shows the topics it may read and tails them live', async () => {
    const page = await browser.newPage({ viewport: { width: 1000, height: 700 } });
    await page.goto(`${hub.url}/`);
    await page.locator('#login').waitFor();
    expect(await page.textContent('#login')).toMatch(/authentication on/);
    await page.screenshot({ path: screenshotPath('dashboard-login.png') });

    await page.fill('#token', 'not-a-jwt');
    await page.click('#login button');
    await page.locator('#login').filter({ hasText: 'was refused' }).waitFor();

    const reader = await token({ sub: 'viewer', tributary: { consume: ['sensors'] }, expInSec: 600 });
    await page.fill('#token', reader);
    await page.click('#login button');
    await until(async () => (await page.$$eval('#topics tbody tr', (trs) => trs.map((tr) => tr.textContent ?? ''))).some((t) => t.startsWith('sensors')), 15_000, 'the topics table');
    const rows = await page.$$eval('#topics tbody tr td:first-child', (tds) => tds.map((td) => td.textContent));
    expect(rows).toEqual(['sensors']); // not `secret`: the token may not read it
    expect(await page.isVisible('#sign-out')).toBe(true);

    await page.click('text=sensors');
    await page.locator('#mode').filter({ hasText: 'live' }).waitFor();
    await until(
      async () => {
        await call('POST', '/v1/topics/sensors/records', { records: [{ value: { t: 3 } }] });
        return Number(await page.getAttribute('#tail-summary', 'data-count')) > 0;
      },
      20_000,
      'a live record through the authenticated WebSocket',
    );
    expect(await page.textContent('#conn-state')).toBe('open');

    await page.click('#sign-out');
    await page.locator('#login').waitFor();
    await page.close();
  }, 60_000);
});
