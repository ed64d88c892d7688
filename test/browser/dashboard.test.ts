/** The placeholder dashboard the hub serves at `/`, in Chromium: it lists the topics and their log end offsets. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser } from 'playwright-core';
import { launchChromium } from '../helpers/browser.ts';
import { startHub, type Hub } from '../helpers/hub.ts';

let hub: Hub;
let browser: Browser;

beforeAll(async () => {
  hub = await startHub();
  browser = await launchChromium();
});

afterAll(async () => {
  await browser?.close();
  await hub?.stop();
  hub?.cleanup();
});

describe('dashboard placeholder', () => {
  it('lists every topic with its partition count and log end offsets', async () => {
    await fetch(`${hub.url}/v1/topics`, { method: 'POST', body: JSON.stringify({ name: 'dash', partitions: 2 }) });
    const res = await fetch(`${hub.url}/v1/topics/dash/records`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ records: [{ value: 1, partition: 1 }, { value: 2, partition: 1 }, { value: 3, partition: 0 }] }),
    });
    expect(res.status).toBe(200);
    const page = await browser.newPage();
    await page.goto(`${hub.url}/`);
    const row = page.locator('#topics tbody tr', { hasText: 'dash' });
    await row.waitFor();
    expect(await row.locator('td').allTextContents()).toEqual(['dash', '2', '1, 2']);
    await page.close();
  });
});
