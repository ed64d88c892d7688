/**
 * IndexedDB refusing to store more (the origin's quota, set small through
 * Chromium's DevTools protocol): send() rejects with OUTBOX_QUOTA instead of
 * hanging or pretending, and what was stored before stays sendable.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBrowserEnv, type BrowserEnv } from '../../harness/browser.ts';
import { startHub, type Hub } from '../../harness/hub.ts';

let env: BrowserEnv;
let hub: Hub;

beforeAll(async () => {
  [env, hub] = await Promise.all([startBrowserEnv(), startHub()]);
});

afterAll(async () => {
  await env?.close();
  await hub?.stop();
  hub?.cleanup();
});

describe('outbox over quota', () => {
  it('send() rejects with OUTBOX_QUOTA once IndexedDB refuses, and earlier events still drain', async () => {
    const ctx = await env.context();
    const page = await env.open(ctx);
    const cdp = await ctx.newCDPSession(page);
    await cdp.send('Storage.overrideQuotaForOrigin', { origin: new URL(env.pages.url).origin, quotaSize: 400 * 1024 });
    const outcome = await page.evaluate(async (url) => {
      // Offline on purpose: a hub URL nobody listens on, so everything stays in the outbox.
      const client = window.T.createClient({ url: 'ws://127.0.0.1:9/v1/ws', name: 'quota', backoffInitialMs: 60_000 });
      // Random text: Chromium compresses large IndexedDB values, so a repeated character would barely count.
      const bytes = crypto.getRandomValues(new Uint8Array(15_000));
      const value = btoa(String.fromCharCode(...bytes));
      let stored = 0;
      for (let i = 0; i < 200; i++) {
        try {
          await client.send('quota-topic', { key: `k${i}`, value: { i, value } });
          stored++;
        } catch (e) {
          await client.close();
          return { stored, code: (e as { code?: string }).code ?? String(e), hub: url };
        }
      }
      await client.close();
      return { stored, code: 'none', hub: url };
    }, hub.wsUrl);
    expect(outcome.code).toBe('OUTBOX_QUOTA');
    expect(outcome.stored).toBeGreaterThan(0);

    // The same outbox, now pointed at the hub: what fit before the refusal drains, once.
    const drained = await page.evaluate(async (url) => {
      const client = window.T.createClient({ url, name: 'quota' });
      const before = await client.pending();
      await client.flush();
      const after = await client.pending();
      await client.close();
      return { before, after };
    }, hub.wsUrl);
    expect(drained).toEqual({ before: outcome.stored, after: 0 });
    const res = await fetch(`${hub.url}/v1/topics/quota-topic/partitions/0/records?offset=0&limit=1000&maxBytes=4194304`);
    expect(((await res.json()) as { records: unknown[] }).records.length).toBe(outcome.stored);
    await ctx.close();
  });
});
