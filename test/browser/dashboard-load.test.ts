/**
 * The dashboard's live tail and charts under a topic receiving 10,000
 * events a second, in Chromium: the tail counts every event (nothing
 * dropped), the page's JS heap stays bounded (measured through the DevTools
 * protocol, after forced GCs), and frames keep being drawn. 15 s in the
 * normal suite; TRIBUTARY_SOAK=1 runs the 60 s soak. The figures are
 * printed for the notes.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, CDPSession, Page } from 'playwright-core';
import { launchChromium, until } from '../../harness/browser.ts';
import { useHub } from '../../harness/hub-fixture.ts';
import { createClient, type Client } from '../../web-client/node.ts';

const SOAK = process.env.TRIBUTARY_SOAK === '1';
const DURATION_MS = SOAK ? 60_000 : 15_000;
const EVENTS_PER_SEC = 10_000;
const TICK_MS = 100;
/** Events the producer lets wait for acks before it pauses (its outbox takes 100,000). */
const MAX_PRODUCER_BACKLOG = 30_000;
/** Retained heap may grow this much over the run (the rings are full after the first seconds; anything past this is a leak). */
const HEAP_GROWTH_LIMIT_BYTES = 16 * 1024 * 1024;
/** Frames a second the page must still draw while busy (a 2-core machine shared by a hub, a producer and the browser). */
const MIN_FPS = 5;

const hub = useHub();
let browser: Browser;
let producer: Client;

beforeAll(async () => {
  browser = await launchChromium();
  const res = await fetch(`${hub.url}/v1/topics`, {
    method: 'POST',
    body: JSON.stringify({ name: 'load', partitions: 2, config: { fsync: 'interval' } }),
  });
  expect(res.status).toBe(201);
  // Large batches: the producer sends one batch per topic at a time, so each round trip must carry a tenth of a second of events.
  producer = createClient({ url: hub.wsUrl, outbox: 'memory', name: 'dash-load', maxInFlightBatches: 8, maxBatchRecords: 5_000, maxBatchBytes: 2 * 1024 * 1024 });
});

afterAll(async () => {
  await producer?.close();
  await browser?.close();
});

async function retainedHeap(cdp: CDPSession): Promise<number> {
  await cdp.send('HeapProfiler.collectGarbage');
  const { usedSize } = (await cdp.send('Runtime.getHeapUsage')) as { usedSize: number };
  return usedSize;
}

const mib = (n: number): string => (n / 1024 / 1024).toFixed(1);

describe('dashboard under load', () => {
  it(
    `tail and chart keep up with ${EVENTS_PER_SEC} events/s for ${DURATION_MS / 1000} s with bounded heap`,
    async () => {
      const page: Page = await browser.newPage({ viewport: { width: 1200, height: 800 } });
      page.on('pageerror', (e) => process.stderr.write(`[page error] ${e.message}\n`));
      await page.goto(`${hub.url}/#/topic/load`);
      await page.locator('#mode').filter({ hasText: 'live' }).waitFor();
      await page.evaluate(() => {
        const w = window as unknown as { frames_: number };
        w.frames_ = 0;
        const tick = (): void => {
          w.frames_++;
          requestAnimationFrame(tick);
        };
        requestAnimationFrame(tick);
      });
      const cdp = await page.context().newCDPSession(page);
      await cdp.send('HeapProfiler.enable');
      // The subscription is live once a first record shows in the tail.
      let probes = 0;
      await until(
        async () => {
          probes++;
          await producer.send('load', { value: { n: -1, v: 0 } });
          return Number(await page.getAttribute('#tail-summary', 'data-count')) > 0;
        },
        20_000,
        'the live subscription',
      );
      await producer.flush();

      let sent = 0;
      let maxUsed = 0;
      let heapAtWarm = 0;
      const started = Date.now();
      const framesAt0 = await page.evaluate(() => (window as unknown as { frames_: number }).frames_);
      const sampler = setInterval(() => {
        cdp.send('Runtime.getHeapUsage').then(
          (h) => (maxUsed = Math.max(maxUsed, (h as { usedSize: number }).usedSize)),
          () => undefined,
        );
      }, 1_000);
      try {
        // Paced by the clock: each tick sends what the elapsed time calls for, so a late tick catches up.
        while (Date.now() - started < DURATION_MS) {
          const due = Math.min(sent + MAX_PRODUCER_BACKLOG, Math.floor(((Date.now() - started) * EVENTS_PER_SEC) / 1000), (DURATION_MS * EVENTS_PER_SEC) / 1000);
          // A hub slower than the offered rate (a busy shared machine) must not overflow the producer's outbox:
          // the run then offers less, and the printed rate says how much.
          if ((await producer.pending()) > MAX_PRODUCER_BACKLOG) {
            await new Promise((r) => setTimeout(r, TICK_MS)); // paces the load generator (not a wait)
            continue;
          }
          const sends: Array<Promise<void>> = [];
          for (; sent < due; sent++) sends.push(producer.send('load', { key: `k${sent % 64}`, value: { n: sent, v: Math.round(Math.sin(sent / 500) * 1000) / 10 } }));
          await Promise.all(sends);
          if (!heapAtWarm && Date.now() - started > 3_000) heapAtWarm = await retainedHeap(cdp);
          await new Promise((r) => setTimeout(r, TICK_MS)); // paces the load generator (not a wait)
        }
      } finally {
        clearInterval(sampler);
      }
      const sendSecs = (Date.now() - started) / 1000;
      const framesDuring = (await page.evaluate(() => (window as unknown as { frames_: number }).frames_)) - framesAt0;
      await producer.flush();
      const ackedSecs = (Date.now() - started) / 1000;
      const total = sent + probes;
      await until(async () => Number(await page.getAttribute('#tail-summary', 'data-count')) >= total, 60_000, `the tail to count ${total}`);
      const caughtUpSecs = (Date.now() - started) / 1000;
      const heapAtEnd = await retainedHeap(cdp);
      const count = Number(await page.getAttribute('#tail-summary', 'data-count'));
      const held = Number(await page.getAttribute('.chart[data-field="v"]', 'data-held'));
      const fps = framesDuring / sendSecs;
      console.log(
        `dashboard load: ${sent} events in ${sendSecs.toFixed(1)} s (${Math.round(sent / sendSecs)}/s offered; acked by ${ackedSecs.toFixed(1)} s, ` +
          `tail complete at ${caughtUpSecs.toFixed(1)} s): tail count ${count}, chart holds ${held} points; ` +
          `heap after GC ${mib(heapAtWarm)} MiB at 3 s → ${mib(heapAtEnd)} MiB at the end, max used ${mib(maxUsed)} MiB; ${fps.toFixed(1)} frames/s while loaded`,
      );
      expect(count).toBe(total);
      expect(held).toBeLessThanOrEqual(2_400);
      expect(heapAtEnd - heapAtWarm).toBeLessThan(HEAP_GROWTH_LIMIT_BYTES);
      expect(fps).toBeGreaterThan(MIN_FPS);
      await page.close();
    },
    DURATION_MS + 150_000,
  );
});
