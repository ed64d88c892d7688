/**
 * State in IndexedDB, in real Chromium against a real hub: a page runs a
 * windowed count with `state: 'indexeddb'`, the page is reloaded (the app
 * never closed), and the new document's app restores from IndexedDB plus
 * the changelog's tail — only the tail is read — and continues with exact
 * counts: every window's updates are 1, 2, …, n across the reload.
 *
 * streams/ is not in the web client's bundle: beforeAll bundles
 * streams/index.ts with Vite into a temp directory, and a small page server
 * serves it beside dist/web-client/tributary.js.
 */
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'vite';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BUNDLE, launchChromium } from '../../harness/browser.ts';
import { startHub, type Hub } from '../../harness/hub.ts';
import { createClient, type Client } from '../../web-client/node.ts';
import { createTopic, directCounts, keyedEvents, produceInput, waitFor, windowResults } from './fixtures.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

const PAGE = `<!doctype html><html><head><meta charset="utf-8"></head><body><script type="module">
import * as T from '/tributary.js';
import * as S from '/streams.js';
let app;
window.run = async (o) => {
  const client = T.createClient({ url: o.wsUrl, outbox: 'memory', name: 'idb-page' });
  app = S.stream(client, { applicationId: 'idbcount', httpUrl: o.httpUrl, staticAssignment: 'all', state: 'indexeddb' });
  app.from('idb-in').groupByKey().window({ tumblingMs: 10000, graceMs: 60000 }).count({ name: 'w' }).to('idb-out');
  await app.start();
  return true;
};
window.metrics = () => app.metrics();
window.flush = () => app.flush().then(() => true);
window.ready = true;
</script></body></html>`;

let hub: Hub;
let client: Client;
let browser: Browser;
let server: http.Server;
let pageUrl: string;
let outDir: string;

beforeAll(async () => {
  if (!fs.existsSync(BUNDLE)) throw new Error(`${BUNDLE} is missing: run \`npm run build\` first`);
  outDir = fs.mkdtempSync(path.join(os.tmpdir(), 'streams-bundle-'));
  await build({
    root: ROOT,
    configFile: false,
    logLevel: 'warn',
    build: { outDir, emptyOutDir: true, target: 'es2022', minify: false, lib: { entry: path.join(ROOT, 'streams/index.ts'), formats: ['es'], fileName: () => 'streams.js' } },
  });
  server = http.createServer((req, res) => {
    const file = req.url === '/tributary.js' ? BUNDLE : req.url === '/streams.js' ? path.join(outDir, 'streams.js') : undefined;
    res.writeHead(200, { 'content-type': file ? 'text/javascript' : 'text/html; charset=utf-8', 'cache-control': 'no-store' });
    res.end(file ? fs.readFileSync(file) : PAGE);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  pageUrl = `http://127.0.0.1:${(server.address() as { port: number }).port}/`;
  [hub, browser] = await Promise.all([startHub(), launchChromium()]);
  client = createClient({ url: hub.wsUrl, outbox: 'memory', name: 'idb-feeder' });
}, 120_000);

afterAll(async () => {
  await client?.close();
  await browser?.close().catch(() => undefined);
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  await hub?.stop();
  hub?.cleanup();
  if (outDir) fs.rmSync(outDir, { recursive: true, force: true });
});

async function startApp(page: Page): Promise<void> {
  await page.waitForFunction(() => (window as unknown as { ready?: boolean }).ready === true, undefined, { timeout: 30_000 });
  await page.evaluate((o) => (window as unknown as { run(o: unknown): Promise<boolean> }).run(o), { wsUrl: hub.wsUrl, httpUrl: hub.url });
}

type PageMetrics = { processed: number; restoredRecords: number; restoredLocalEntries: number };
const metrics = (page: Page) => page.evaluate(() => (window as unknown as { metrics(): PageMetrics }).metrics());
const flush = (page: Page) => page.evaluate(() => (window as unknown as { flush(): Promise<boolean> }).flush());

describe('state in IndexedDB (Chromium, real hub)', () => {
  it('a windowed count survives a page reload with exact results, restoring from IndexedDB and the changelog tail', async () => {
    await createTopic(hub.url, 'idb-in', 2);
    await createTopic(hub.url, 'idb-out', 2);
    const events = keyedEvents(6_000, 40, 1_700_000_000_000, 5);
    await produceInput(client, 'idb-in', 2, events.slice(0, 3_000), 'idb-1');

    const page = await (await browser.newContext()).newPage();
    page.on('pageerror', (e) => process.stderr.write(`[page error] ${e.message}\n`));
    await page.goto(pageUrl);
    await startApp(page);
    await waitFor(async () => (await metrics(page)).processed === 3_000, 120_000, 'first 3,000 processed in the page');
    await flush(page); // durable in the changelog, then in IndexedDB
    const first = await metrics(page);
    expect(first.restoredLocalEntries).toBe(0);

    // A reload without close(): the new document knows only what IndexedDB and the hub kept.
    await page.reload();
    await produceInput(client, 'idb-in', 2, events.slice(3_000), 'idb-2');
    await startApp(page);
    await waitFor(async () => (await metrics(page)).processed >= 3_000, 120_000, 'next 3,000 processed after the reload');
    await flush(page);
    const second = await metrics(page);
    expect(second.processed).toBe(3_000); // resumed at the restored positions: nothing processed twice
    expect(second.restoredLocalEntries).toBeGreaterThan(0);
    // Only the tail after the snapshot is read (nothing, or the first run's fence records), not the ~3,000-record changelog.
    expect(second.restoredRecords).toBeLessThan(10);

    const { latest, updates } = await windowResults(hub.url, 'idb-out');
    const expected = directCounts(events, 10_000);
    expect(latest.size).toBe(expected.size);
    for (const [w, n] of expected) expect(latest.get(w), w).toBe(n);
    for (const [w, u] of updates) expect(u, w).toEqual(Array.from({ length: expected.get(w)! }, (_, i) => i + 1));
  }, 300_000);
});
