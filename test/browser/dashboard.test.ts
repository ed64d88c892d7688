/**
 * The dashboard the hub serves at `/` (dist/dashboard, from `npm run build`),
 * in Chromium against a real hub with data: topics with their offsets,
 * groups with members and lag, replay from an offset and from a time on the
 * timeline, and a live chart gaining points. Each view's screenshot is saved
 * to a temp folder, or to docs/img/ (the README shows one) when
 * TRIBUTARY_UPDATE_SCREENSHOTS=1.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import { launchChromium, until } from '../../harness/browser.ts';
import { startHub, type Hub } from '../../harness/hub.ts';
import { screenshotPath } from '../helpers/screenshots.ts';
import { createClient } from '../../web-client/node.ts';

let hub: Hub;
let browser: Browser;
/** A time between the two halves of `metrics` (offsets 0–49 were appended before it, 50–99 after). */
let midTime = 0;

async function post(pathname: string, body: unknown): Promise<Response> {
  const res = await fetch(`${hub.url}${pathname}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  if (res.status >= 300) throw new Error(`${pathname}: ${res.status} ${await res.text()}`);
  return res;
}

async function openDashboard(hash: string): Promise<Page> {
  const page = await browser.newPage({ viewport: { width: 1200, height: 800 } });
  page.on('pageerror', (e) => process.stderr.write(`[page error] ${e.message}\n`));
  await page.goto(`${hub.url}/${hash}`);
  return page;
}

async function screenshot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: screenshotPath(name), fullPage: false });
}

/** Cell texts of the rows of a table, header excluded. */
function rowsOf(page: Page, tableId: string): Promise<string[][]> {
  return page.$$eval(`#${tableId} tbody tr`, (trs) => trs.map((tr) => [...tr.querySelectorAll('td')].map((td) => td.textContent ?? '')));
}

beforeAll(async () => {
  hub = await startHub();
  browser = await launchChromium();
  await post('/v1/topics', { name: 'orders', partitions: 2 });
  await post('/v1/topics', { name: 'metrics', partitions: 1 });
  const orders = Array.from({ length: 50 }, (_, i) => ({ key: `o${i}`, value: { n: i, amount: 10 + i }, partition: i < 30 ? 0 : 1 }));
  await post('/v1/topics/orders/records', { records: orders });
  // Times on the log are append times (the hub's time index): two halves appended a second apart.
  const metrics = Array.from({ length: 100 }, (_, i) => ({ value: { n: i, temp: 20 + (i % 7) } }));
  await post('/v1/topics/metrics/records', { records: metrics.slice(0, 50) });
  // Kept: these make the two halves' append times a second apart (the picture shows them), nothing to wait for.
  await new Promise((r) => setTimeout(r, 1_000));
  midTime = Date.now();
  await new Promise((r) => setTimeout(r, 1_000));
  await post('/v1/topics/metrics/records', { records: metrics.slice(50) });
});

afterAll(async () => {
  await browser?.close();
  await hub?.stop();
  hub?.cleanup();
});

describe('dashboard', () => {
  it('lists the topics with their partitions and offsets', async () => {
    const page = await openDashboard('#/topics');
    await until(async () => (await rowsOf(page, 'topics')).length === 2, 15_000, 'topic rows');
    const rows = await rowsOf(page, 'topics');
    expect(rows.map((r) => r.slice(0, 3)).sort()).toEqual([
      ['metrics', '1', '0–100'],
      ['orders', '2', '0–30, 0–20'],
    ]);
    expect(rows.every((r) => /B$/.test(r[3]) && /\/s$/.test(r[4]))).toBe(true);
    await screenshot(page, 'dashboard-topics.png');
    await page.close();
  });

  it('replays exactly the records from a chosen offset, then follows live', async () => {
    const page = await openDashboard('#/topic/metrics');
    await page.locator('#partitions tbody tr').first().waitFor();
    await page.selectOption('#partition', '0');
    await page.fill('#replay-offset', '40');
    await page.click('#replay-offset-go');
    await until(async () => (await page.getAttribute('#tail-summary', 'data-count')) === '60', 15_000, '60 records from offset 40');
    expect(await page.textContent('#tail-summary')).toBe('60 records · p0: 40–99');
    const shown = (await rowsOf(page, 'tail')).map((r) => Number(r[1]));
    expect(shown).toEqual(Array.from({ length: 50 }, (_, i) => 99 - i));
    // Then live: a new record joins the same tail.
    await post('/v1/topics/metrics/records', { records: [{ value: { n: 100, temp: 30 } }] });
    await until(async () => (await page.getAttribute('#tail-summary', 'data-count')) === '61', 15_000, 'the live record');
    expect(await page.textContent('#tail-summary')).toBe('61 records · p0: 40–100');
    await screenshot(page, 'dashboard-replay.png');
    await page.close();
  });

  it('replays from a time chosen on the timeline', async () => {
    const page = await openDashboard('#/topic/metrics');
    // The timeline spans the oldest record's time to now once the page has read it.
    const first = (await (await fetch(`${hub.url}/v1/topics/metrics/partitions/0/records?offset=0&limit=1`)).json()) as { records: Array<{ timestamp: number }> };
    await until(async () => Number(await page.getAttribute('#timeline', 'min')) === first.records[0].timestamp, 15_000, 'timeline from the oldest record');
    await page.$eval(
      '#timeline',
      (el, v) => {
        const input = el as HTMLInputElement;
        input.value = String(v);
        input.dispatchEvent(new Event('input'));
      },
      midTime,
    );
    expect(await page.textContent('#timeline-time')).toBe(new Date(midTime).toISOString());
    await page.click('#replay-time-go');
    // Records 50 on were appended after the chosen time (and any a test before appended live follow them).
    const end = await endOffsets('metrics');
    const want = `${end - 50} records · p0: 50–${end - 1}`;
    await until(async () => (await page.textContent('#tail-summary')) === want, 15_000, want).catch(async (e) => {
      throw new Error(`${(e as Error).message}: ${await page.textContent('#tail-summary')} / ${await page.textContent('#mode')}`);
    });
    await page.close();
  });

  it('a live chart gains points as events arrive', async () => {
    const page = await openDashboard('#/topic/orders');
    await page.locator('#mode').filter({ hasText: 'live' }).waitFor();
    // Give the subscription a moment to be in place: its first live record makes the chart.
    const points = async (): Promise<number> => Number((await page.getAttribute('.chart[data-field="amount"]', 'data-points').catch(() => null)) ?? 0);
    let n = 50;
    const produce = async (count: number): Promise<void> => {
      const records = Array.from({ length: count }, () => ({ key: `o${n}`, value: { n, amount: 10 + (n++ % 13) } }));
      await post('/v1/topics/orders/records', { records });
    };
    await until(
      async () => {
        await produce(1);
        return (await points()) > 0;
      },
      15_000,
      'the first chart point',
    );
    const before = await points();
    for (let i = 0; i < 10; i++) {
      await produce(1);
      await new Promise((r) => setTimeout(r, 60)); // records further apart than a chart point's 25 ms bucket
    }
    await until(async () => (await points()) >= before + 10, 15_000, 'ten more points');
    expect(await page.locator('.chart[data-field="n"]').count()).toBe(1);
    await screenshot(page, 'dashboard-topic.png');
    await page.close();
    // Its waits add up to more than 30 s when the page loads slowly (once in a fresh-clone CI run).
  }, 60_000);

  it('lists the consumer groups with members, assignments and lag', async () => {
    // One group that consumed everything and left, then fell behind by 5; one with a live member.
    const client = createClient({ url: hub.wsUrl, outbox: 'memory', name: 'dash-groups' });
    try {
      const total = await endOffsets('metrics');
      let seen = 0;
      const done = client.subscribe('metrics', { group: 'billing', from: 'earliest' }, () => void seen++);
      await until(() => seen === total, 15_000, 'billing consumed metrics');
      await done.commit();
      done.close();
      await post('/v1/topics/metrics/records', { records: Array.from({ length: 5 }, (_, i) => ({ value: { n: 1000 + i } })) });
      client.subscribe('orders', { group: 'live-group', from: 'latest' }, () => undefined);

      const page = await openDashboard('#/groups');
      await until(
        async () => {
          const rows = await rowsOf(page, 'groups');
          return rows.some((r) => r[0] === 'billing' && r[5] === '5') && rows.some((r) => r[0] === 'live-group' && r[3] === '1');
        },
        20_000,
        'groups with their lag and members',
      );
      await screenshot(page, 'dashboard-groups.png');
      await page.click('text=live-group');
      await until(async () => (await rowsOf(page, 'members')).some((r) => r[2] === 'orders' && r[3] === '0, 1'), 20_000, 'the live member with both partitions');
      await screenshot(page, 'dashboard-group.png');
      await page.goto(`${hub.url}/#/group/billing`);
      await until(async () => (await rowsOf(page, 'group-offsets')).some((r) => r[0] === 'metrics' && r[2] === String(total) && r[4] === '5'), 20_000, 'billing offsets and lag');
      await page.close();
    } finally {
      await client.close();
    }
  }, 60_000);
});

async function endOffsets(topic: string): Promise<number> {
  const d = (await (await fetch(`${hub.url}/v1/topics/${topic}`)).json()) as { offsets: Array<{ logEnd: number }> };
  return d.offsets.reduce((n, o) => n + o.logEnd, 0);
}
