/**
 * Chromium driven over a bare DevTools pipe, for benches that must not pay
 * for Playwright's instrumentation. Playwright enables the Network domain on
 * every page and worker it attaches, so Chromium reports each WebSocket frame
 * to it (its payload base64 in a JSON event: renderer → browser → pipe →
 * node): in a WebSocket replay that costs more CPU than the hub does. Here
 * only the domains the bench asks for are enabled.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Readable, Writable } from 'node:stream';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const READY_TIMEOUT_MS = 10_000;
const READY_POLL_MS = 50;
/** Chromium features that load the omnibox popup's WebUI pages (see launchRawChromium). */
const TOP_CHROME_WEBUI = ['WebUIOmniboxPopup', 'WebUIOmniboxFullPopup', 'WebUIOmniboxAimPopup'];

type Handler = (params: Record<string, unknown>) => void;

/** One page's CDP session: what the bench needs of Playwright's Page and CDPSession. */
export interface RawPage {
  send<T = Record<string, unknown>>(method: string, params?: object): Promise<T>;
  on(event: string, handler: Handler): void;
  /** Runs `fn(arg)` in the page (fn must be self-contained) and returns its (awaited) value. */
  evaluate<A, R>(fn: (arg: A) => R | Promise<R>, arg: A): Promise<R>;
}

export interface RawChromium {
  /** Opens `url` in a new page and waits for `window.tbReady`. */
  openTestPage(url: string): Promise<RawPage>;
  /** The browser's own session (no target): tracing from here records every process, not only the page's. */
  browser: Pick<RawPage, 'send' | 'on'>;
  close(): Promise<void>;
}

export function launchRawChromium(): RawChromium {
  const userDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tributary-raw-chromium-'));
  const args = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'];
  // Chromium 156 in --headless still builds its browser UI's omnibox popups as WebUI pages
  // (chrome://omnibox-popup.top-chrome/, its "AIM" variant) in a renderer of their own, and loads them
  // seconds after start and again later: 0.2-0.4 s of CPU a load on this machine, inside the timed window
  // (the "second renderer" of bench/README.md's censuses, 1-2 µs per replayed event). A page has no use
  // for them. Chromium reads one --disable-features: BROWSER_REPLAY_CHROMIUM_ARGS that sets its own must list these too.
  args.push(`--disable-features=${TOP_CHROME_WEBUI.join(',')}`);
  // BROWSER_REPLAY_CHROMIUM_ARGS: extra switches for experiments (e.g. --js-flags=--min-semi-space-size=16).
  args.push(...(process.env.BROWSER_REPLAY_CHROMIUM_ARGS ?? '').split(' ').filter(Boolean));
  const child = spawn(CHROMIUM, [...args, '--remote-debugging-pipe', `--user-data-dir=${userDir}`, 'about:blank'], { stdio: ['ignore', 'ignore', 'ignore', 'pipe', 'pipe'] });
  const toBrowser = child.stdio[3] as Writable;
  const fromBrowser = child.stdio[4] as Readable;
  let nextId = 1;
  const pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  const handlers = new Map<string, Handler[]>();
  let buf = '';
  fromBrowser.setEncoding('utf8');
  fromBrowser.on('data', (chunk: string) => {
    buf += chunk;
    let end: number;
    // The pipe protocol: one JSON message per NUL-terminated record.
    while ((end = buf.indexOf('\0')) >= 0) {
      const m = JSON.parse(buf.slice(0, end)) as { id?: number; method?: string; params?: Record<string, unknown>; sessionId?: string; result?: unknown; error?: { message: string } };
      buf = buf.slice(end + 1);
      if (m.id !== undefined) {
        const p = pending.get(m.id);
        pending.delete(m.id);
        if (m.error) p?.reject(new Error(m.error.message));
        else p?.resolve(m.result);
      } else if (m.method) for (const h of handlers.get(`${m.sessionId ?? ''}:${m.method}`) ?? []) h(m.params ?? {});
    }
  });
  // A browser that dies fails what waits on it instead of hanging the bench.
  child.once('exit', (code, signal) => {
    for (const p of pending.values()) p.reject(new Error(`Chromium exited (${signal ?? code}) with a DevTools call pending`));
    pending.clear();
  });
  const send = <T>(method: string, params: object = {}, sessionId?: string): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      if (child.exitCode !== null || child.signalCode !== null) return reject(new Error(`Chromium has exited: cannot send ${method}`));
      const id = nextId++;
      pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      toBrowser.write(`${JSON.stringify({ id, method, params, sessionId })}\0`);
    });
  const on = (sessionId: string, event: string, handler: Handler): void => {
    const key = `${sessionId}:${event}`;
    handlers.set(key, [...(handlers.get(key) ?? []), handler]);
  };
  return {
    browser: { send: (method, params) => send(method, params), on: (event, handler) => on('', event, handler) },
    async openTestPage(url) {
      const { targetId } = await send<{ targetId: string }>('Target.createTarget', { url });
      const { sessionId } = await send<{ sessionId: string }>('Target.attachToTarget', { targetId, flatten: true });
      const page: RawPage = {
        send: (method, params) => send(method, params, sessionId),
        on: (event, handler) => on(sessionId, event, handler),
        // tsx keeps function names with a __name helper that page code does not have: defined first.
        async evaluate(fn, arg) {
          const r = await send<{ result: { value: unknown }; exceptionDetails?: { exception?: { description?: string }; text: string } }>(
            'Runtime.evaluate',
            { expression: `globalThis.__name ??= (f) => f; (${fn.toString()})(${JSON.stringify(arg)})`, awaitPromise: true, returnByValue: true },
            sessionId,
          );
          if (r.exceptionDetails) throw new Error(r.exceptionDetails.exception?.description ?? r.exceptionDetails.text);
          return r.result.value as Awaited<ReturnType<typeof fn>>;
        },
      };
      const deadline = Date.now() + READY_TIMEOUT_MS;
      while (!(await page.evaluate(() => (window as { tbReady?: boolean }).tbReady === true, null))) {
        if (Date.now() > deadline) throw new Error(`${url}: the bundle did not load in ${READY_TIMEOUT_MS} ms`);
        await new Promise((r) => setTimeout(r, READY_POLL_MS));
      }
      return page;
    },
    async close() {
      await send('Browser.close').catch(() => undefined);
      if (child.exitCode === null && child.signalCode === null) await new Promise((r) => child.once('exit', r));
      fs.rmSync(userDir, { recursive: true, force: true });
    },
  };
}
