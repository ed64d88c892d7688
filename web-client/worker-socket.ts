/**
 * `WorkerWebSocket`: a browser WebSocket whose socket lives in a dedicated
 * Worker, for pages that replay a lot of history (pass it as
 * `createClient({ WebSocket: WorkerWebSocket })`).
 *
 * Why: Chromium moves a WebSocket's received bytes from its network process
 * to the page through a data pipe (131,000 bytes on desktop) that the
 * socket's own thread drains. With the socket on the page's main thread,
 * nothing is drained while a handler runs: replaying 200,000 events, frames
 * arrived in lock-step with the handler (one 133 KB frame, then a 3-5 ms
 * wait for the next), although the hub had sent the whole 4 MiB credit
 * window in bursts of ~30 frames within 2 ms of each credit; the page sat
 * idle 55-65% of the run (bench/browser-replay.ts). Bigger frames were
 * slower, not faster, and frames small enough for two to fit in the pipe
 * did not help either. A worker's thread does nothing but drain, so the
 * next frames are already on the page's side when the handler returns: the
 * main thread received frames back to back (idle 25-30%).
 *
 * Memory stays bounded by the subscriptions' credit: the hub sends no more
 * records than that ahead of the handler, wherever they wait. Received
 * frames cross to the page transferred (no copy); sent ones are copied. The worker's code is a blob: URL, so a
 * Content-Security-Policy must allow `worker-src blob:`; where it does not,
 * the constructor throws and the client reports the error and retries (use
 * the global WebSocket there).
 */
import type { WebSocketLike } from './connection.ts';

const CONNECTING = 0;
const OPEN = 1;
const CLOSING = 2;
const CLOSED = 3;

/** The worker: opens the socket, forwards what it receives (transferred), sends what the page posts. Plain JS: it runs as is. */
const WORKER_SOURCE = `
let ws = null;
onmessage = (e) => {
  const m = e.data;
  if (m.t === 'open') {
    try {
      ws = new WebSocket(m.url, m.protocols);
    } catch (err) {
      postMessage({ t: 'close', code: 1006, reason: String(err && err.message) });
      close();
      return;
    }
    ws.binaryType = 'arraybuffer';
    ws.onopen = () => postMessage({ t: 'open' });
    ws.onmessage = (ev) => postMessage({ t: 'message', data: ev.data }, typeof ev.data === 'string' ? [] : [ev.data]);
    ws.onerror = () => postMessage({ t: 'error' });
    ws.onclose = (ev) => {
      postMessage({ t: 'close', code: ev.code, reason: ev.reason });
      close();
    };
  } else if (m.t === 'send') {
    if (ws && ws.readyState === 1) ws.send(m.data);
  } else if (m.t === 'close') {
    if (ws) ws.close(m.code, m.reason);
  }
};
`;

let workerUrl: string | undefined;

type FromWorker = { t: 'open' } | { t: 'message'; data: ArrayBuffer | string } | { t: 'error' } | { t: 'close'; code: number; reason: string };

export class WorkerWebSocket implements WebSocketLike {
  /** Frames always arrive as ArrayBuffers (the setting is kept for the interface). */
  binaryType = 'arraybuffer';
  onopen: ((ev: unknown) => void) | null = null;
  onclose: ((ev: { code: number; reason: string }) => void) | null = null;
  onerror: ((ev: unknown) => void) | null = null;
  onmessage: ((ev: { data: unknown }) => void) | null = null;
  private state = CONNECTING;
  private readonly worker: Worker;

  constructor(url: string, protocols?: string | string[]) {
    workerUrl ??= URL.createObjectURL(new Blob([WORKER_SOURCE], { type: 'text/javascript' }));
    this.worker = new Worker(workerUrl);
    this.worker.onmessage = (e: MessageEvent<FromWorker>) => this.fromWorker(e.data);
    this.worker.onerror = () => this.closed(1006, 'the socket worker failed');
    // The worker's own base URL is a blob: URL: resolve a relative one against the page's.
    const absolute = typeof location === 'undefined' ? url : new URL(url, location.href).href;
    this.worker.postMessage({ t: 'open', url: absolute, protocols });
  }

  get readyState(): number {
    return this.state;
  }

  send(data: Uint8Array): void {
    if (this.state === CONNECTING) throw new DOMException('the socket is still connecting', 'InvalidStateError');
    if (this.state !== OPEN) return; // as a WebSocket does while closing: dropped
    // Copied, not transferred: the caller may reuse the buffer. A view is sliced first, since cloning one copies
    // all of the buffer behind it.
    this.worker.postMessage({ t: 'send', data: data.byteOffset === 0 && data.byteLength === data.buffer.byteLength ? data : data.slice() });
  }

  close(code?: number, reason?: string): void {
    if (this.state === CLOSING || this.state === CLOSED) return;
    this.state = CLOSING;
    this.worker.postMessage({ t: 'close', code, reason });
  }

  private fromWorker(m: FromWorker): void {
    if (this.state === CLOSED) return;
    if (m.t === 'message') this.onmessage?.({ data: m.data });
    else if (m.t === 'open') {
      if (this.state !== CONNECTING) return;
      this.state = OPEN;
      this.onopen?.({});
    } else if (m.t === 'error') this.onerror?.({});
    else this.closed(m.code, m.reason);
  }

  private closed(code: number, reason: string): void {
    if (this.state === CLOSED) return;
    this.state = CLOSED;
    this.worker.terminate();
    this.onclose?.({ code, reason });
  }
}
