/**
 * Real Chromium for the browser tests and the outbox bench: Debian's
 * /usr/bin/chromium driven by playwright-core, and a small node:http server
 * on 127.0.0.1 that serves a test page and the built bundle
 * (dist/web-client/tributary.js, from `npm run build`).
 *
 * The page loads the bundle as is with <script type="module"> and exposes it
 * as `window.T`, plus `window.tb`: a few helpers the tests drive through
 * page.evaluate (clients by id, bulk sends, counters of acks and errors).
 * Each server has its own port, so each test file gets its own origin (its
 * own IndexedDB and Web Locks).
 */
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const BUNDLE = path.join(ROOT, 'dist/web-client/tributary.js');
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

/** The page's helpers, run in the browser. Kept as a string: it is page code, not test code. */
const PAGE_SCRIPT = `
import * as T from '/tributary.js';
const clients = {};
const stats = {};
const got = {};
const subs = {};
window.T = T;
window.tb = {
  start(id, opts) {
    const c = T.createClient(opts);
    clients[id] = c;
    const s = (stats[id] = { acks: 0, ackedEvents: 0, duplicateAcks: 0, errors: [], states: [] });
    c.on('ack', (a) => { s.acks++; s.ackedEvents += a.records.length; if (a.duplicate) s.duplicateAcks++; });
    c.on('error', (e) => s.errors.push((e.code ?? '') + ' ' + e.message));
    c.on('state', (st) => s.states.push(st));
    return true;
  },
  client: (id) => clients[id],
  stats: (id) => stats[id],
  state: (id) => clients[id].state,
  async sendMany(id, topic, from, count, keys, prefix = 'k') {
    const c = clients[id];
    const sends = [];
    for (let n = from; n < from + count; n++) sends.push(c.send(topic, { key: prefix + (n % keys), value: { n } }));
    await Promise.all(sends);
    return count;
  },
  flush: (id) => clients[id].flush().then(() => true),
  pending: (id) => clients[id].pending(),
  close: (id) => clients[id].close().then(() => true),
  subscribe(id, topic, opts) {
    const list = (got[id] ??= []);
    subs[id] = clients[id].subscribe(topic, opts, (r) => { list.push([r.partition, r.offset, r.value && r.value.n]); });
    return true;
  },
  unsubscribe: (id) => (subs[id].close(), true),
  received: (id) => got[id] ?? [],
  receivedCount: (id) => (got[id] ?? []).length,
};
window.tbReady = true;
`;

/** What `window.tb` offers to page.evaluate callbacks. */
interface PageHelpers {
  start(id: string, opts: import('../web-client/index.ts').ClientOptions): boolean;
  client(id: string): import('../web-client/index.ts').Client;
  stats(id: string): { acks: number; ackedEvents: number; duplicateAcks: number; errors: string[]; states: string[] };
  state(id: string): string;
  /** Sends {n} for n in [from, from+count), keyed `${prefix}${n % keys}`. */
  sendMany(id: string, topic: string, from: number, count: number, keys: number, prefix?: string): Promise<number>;
  flush(id: string): Promise<boolean>;
  pending(id: string): Promise<number>;
  close(id: string): Promise<boolean>;
  /** Subscribes client `id`; records are kept as [partition, offset, value.n]. */
  subscribe(id: string, topic: string, opts: import('../web-client/index.ts').SubscribeOptions): boolean;
  unsubscribe(id: string): boolean;
  received(id: string): Array<[number, number, number]>;
  receivedCount(id: string): number;
}

declare global {
  interface Window {
    T: typeof import('../web-client/index.ts');
    tb: PageHelpers;
    tbReady?: boolean;
  }
}

const PAGE_HTML = `<!doctype html><html><head><meta charset="utf-8"><title>tributary test page</title></head>
<body><script type="module" src="/page.js"></script></body></html>`;

export interface PageServer {
  url: string;
  close(): Promise<void>;
}

export async function startPageServer(): Promise<PageServer> {
  if (!fs.existsSync(BUNDLE)) throw new Error(`${BUNDLE} is missing: run \`npm run build\` first`);
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const send = (status: number, type: string, body: string | Buffer) => {
      res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
      res.end(body);
    };
    if (url.pathname === '/' || url.pathname === '/index.html') return send(200, 'text/html; charset=utf-8', PAGE_HTML);
    if (url.pathname === '/page.js') return send(200, 'text/javascript', PAGE_SCRIPT);
    if (url.pathname === '/tributary.js') return send(200, 'text/javascript', fs.readFileSync(BUNDLE));
    if (url.pathname === '/tributary.js.map' && fs.existsSync(`${BUNDLE}.map`)) return send(200, 'application/json', fs.readFileSync(`${BUNDLE}.map`));
    send(404, 'text/plain', 'not found');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  return {
    url: `http://127.0.0.1:${port}/`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

export async function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'],
  });
}

/** One browser and one page server for a test file. */
export interface BrowserEnv {
  browser: Browser;
  pages: PageServer;
  /** A fresh context (its own storage unless `shared` is passed). */
  context(): Promise<BrowserContext>;
  /** Opens the test page in `ctx` and waits for the bundle to load. */
  open(ctx: BrowserContext): Promise<Page>;
  close(): Promise<void>;
}

export async function startBrowserEnv(): Promise<BrowserEnv> {
  const [browser, pages] = await Promise.all([launchChromium(), startPageServer()]);
  return {
    browser,
    pages,
    context: () => browser.newContext(),
    async open(ctx) {
      const page = await ctx.newPage();
      page.on('pageerror', (e) => process.stderr.write(`[page error] ${e.message}\n`));
      await gotoTestPage(page, pages.url);
      return page;
    },
    async close() {
      await browser.close().catch(() => undefined);
      await pages.close();
    },
  };
}

export async function gotoTestPage(page: Page, url: string): Promise<void> {
  await page.goto(url);
  await page.waitForFunction(() => window.tbReady === true, undefined, { timeout: 10_000 });
}

/** Reloads and waits for the bundle again (clients of the old document are gone). */
export async function reloadTestPage(page: Page): Promise<void> {
  await page.reload();
  await page.waitForFunction(() => window.tbReady === true, undefined, { timeout: 10_000 });
}

/** Polls `fn` in Node until it returns true. */
export async function until(fn: () => boolean | Promise<boolean>, timeoutMs = 20_000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await fn())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

export { exactlyOnceProblems, readTopic, createTopic } from './topic-reader.ts';
