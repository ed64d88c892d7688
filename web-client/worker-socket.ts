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
 * The worker also does the byte work of each `records` frame (decoding it,
 * each batch's CRC, the record walk, joining keys and JSON values: the
 * quarter of the page's time that was not JSON.parse or the handler) and
 * hands the page the frame's bytes with an index (protocol/frame-index.ts),
 * so the page makes records without walking bytes: main-thread CPU per
 * event 0.5-0.8x in six same-run pairs (bench/README.md).
 *
 * One worker per page, shared by every WorkerWebSocket and kept while the
 * page lives (a reconnect does not pay its start again). Its code is a
 * blob: module that imports this module's own URL (import.meta.url: the
 * built bundle, or this file under a dev server) and runs runSocketWorker,
 * so the worker checks batches with the same protocol code as the page.
 * Where the worker cannot start (a Content-Security-Policy without
 * `worker-src blob:`, a module that cannot load in a worker), the socket,
 * and every later one, lives on the page instead: the same client, the
 * pre-worker speed.
 *
 * Why not the default in browsers: the worker loads the module the client
 * came from; for the built bundle that is the client alone, but an
 * application that bundles the client into its own chunk would run that
 * chunk's top-level code in the worker too. And a thread per page is a cost
 * only big replays repay. Opt in where both hold.
 *
 * Memory stays bounded by the subscriptions' credit: the hub sends no more
 * records than that ahead of the handler, wherever they wait. Received
 * frames and their indexes' arrays cross to the page transferred (no copy),
 * the joined key and JSON texts as strings (copied, into V8's heap: see
 * protocol/frame-index.ts); sent ones are copied.
 */
import { crc32c, decodeServerFrame, indexBuffers, indexFrameOrFault, type FrameFault, type FrameIndex, type RecordsFrame } from '../protocol/index.ts';
import { DecodedFrame, type WebSocketLike } from './connection.ts';

const CONNECTING = 0;
const OPEN = 1;
const CLOSING = 2;
const CLOSED = 3;

/** A records frame as the socket worker hands it over: checked, and indexed for readIndexedRecords. */
export type IndexedRecordsFrame = RecordsFrame & { index?: FrameIndex | FrameFault };

type ToWorker = { t: 'open'; id: number; url: string; protocols?: string | string[] } | { t: 'send'; id: number; data: Uint8Array } | { t: 'close'; id: number; code?: number; reason?: string };
type FromWorker =
  | { t: 'open'; id: number }
  | { t: 'message'; id: number; data: ArrayBuffer | string }
  | { t: 'records'; id: number; frame: RecordsFrame; index: FrameIndex | FrameFault }
  | { t: 'error'; id: number }
  | { t: 'close'; id: number; code: number; reason: string };

interface WorkerScope {
  onmessage: ((e: MessageEvent<ToWorker>) => void) | null;
  postMessage(m: FromWorker, transfer?: Transferable[]): void;
}

/**
 * The worker's side (runs in the worker, which imports this module): one
 * socket per id; a `records` frame is decoded, its batches checked and
 * indexed (protocol/frame-index.ts) and handed over with its bytes,
 * transferred; any other frame is forwarded as received (transferred);
 * what the page posts is sent.
 */
export function runSocketWorker(scope: WorkerScope): void {
  const sockets = new Map<number, WebSocket>();
  const received = (id: number, data: ArrayBuffer | string): void => {
    const r = typeof data === 'string' ? null : decodeServerFrame(new Uint8Array(data));
    if (r === null || !r.ok || r.frame.t !== 'records') return scope.postMessage({ t: 'message', id, data }, typeof data === 'string' ? [] : [data]);
    const frame = r.frame;
    const index = indexFrameOrFault(frame.b, crc32c);
    const buffers = indexBuffers(index);
    buffers.push(frame.b.buffer as ArrayBuffer);
    if (frame.b.buffer !== data) buffers.push(data as ArrayBuffer);
    scope.postMessage({ t: 'records', id, frame, index }, buffers);
  };
  const open = (id: number, url: string, protocols?: string | string[]): void => {
    let ws: WebSocket;
    try {
      ws = new WebSocket(url, protocols);
    } catch (err) {
      scope.postMessage({ t: 'close', id, code: 1006, reason: String((err as Error)?.message) });
      return;
    }
    sockets.set(id, ws);
    ws.binaryType = 'arraybuffer';
    ws.onopen = () => scope.postMessage({ t: 'open', id });
    ws.onmessage = (ev: MessageEvent<ArrayBuffer | string>) => received(id, ev.data);
    ws.onerror = () => scope.postMessage({ t: 'error', id });
    ws.onclose = (ev) => {
      sockets.delete(id);
      scope.postMessage({ t: 'close', id, code: ev.code, reason: ev.reason });
    };
  };
  scope.onmessage = (e) => {
    const m = e.data;
    if (m.t === 'open') return open(m.id, m.url, m.protocols);
    const ws = sockets.get(m.id);
    if (!ws) return;
    if (m.t === 'send') {
      if (ws.readyState === OPEN) ws.send(m.data);
    } else ws.close(m.code, m.reason);
  };
}

/**
 * The worker's code: a module that imports this very module (the bundle,
 * or worker-socket.ts under a dev server) and runs runSocketWorker, so the
 * worker checks batches with the same protocol code as the page.
 */
const workerSource = (moduleUrl: string): string => `import { runSocketWorker } from ${JSON.stringify(moduleUrl)};\nrunSocketWorker(self);\n`;

/**
 * The page's one socket worker, shared by every WorkerWebSocket and kept
 * while the page lives: a reconnect or a second client does not pay the
 * worker's start (loading the module) again, and its code stays compiled.
 */
interface SharedWorker {
  worker: Worker;
  sockets: Map<number, WorkerWebSocket>;
  /** Whether it said anything yet: an error before that means it never started. */
  heard: boolean;
}
let shared: SharedWorker | null = null;
let nextSocketId = 1;
/** Set once the worker failed to start (CSP without worker-src blob:, a module that cannot load in a worker): sockets then live on the page. */
let workerUnavailable = false;

function sharedWorker(): SharedWorker | null {
  if (shared || workerUnavailable) return shared;
  let worker: Worker;
  try {
    const url = URL.createObjectURL(new Blob([workerSource(import.meta.url)], { type: 'text/javascript' }));
    worker = new Worker(url, { type: 'module' });
  } catch {
    workerUnavailable = true;
    return null;
  }
  const s: SharedWorker = (shared = { worker, sockets: new Map(), heard: false });
  worker.onmessage = (e: MessageEvent<FromWorker>) => {
    s.heard = true;
    s.sockets.get(e.data.id)?.fromWorker(e.data);
  };
  worker.onerror = (e) => {
    e.preventDefault();
    worker.terminate();
    if (shared === s) shared = null;
    // It never started (blocked by a Content-Security-Policy, or its module did not load): sockets on the page from now on.
    if (!s.heard) workerUnavailable = true;
    for (const ws of s.sockets.values()) ws.workerFailed(!s.heard);
  };
  return s;
}

export class WorkerWebSocket implements WebSocketLike {
  /** Frames always arrive as ArrayBuffers (the setting is kept for the interface). */
  binaryType = 'arraybuffer';
  onopen: ((ev: unknown) => void) | null = null;
  onclose: ((ev: { code: number; reason: string }) => void) | null = null;
  onerror: ((ev: unknown) => void) | null = null;
  onmessage: ((ev: { data: unknown }) => void) | null = null;
  private state = CONNECTING;
  private readonly id = nextSocketId++;
  private worker: SharedWorker | null;
  /** The page socket, when the worker could not start. */
  private socket: WebSocket | null = null;
  private readonly url: string;

  constructor(
    url: string,
    private readonly protocols?: string | string[],
  ) {
    // The worker's own base URL is a blob: URL: resolve a relative one against the page's.
    this.url = typeof location === 'undefined' ? url : new URL(url, location.href).href;
    this.worker = sharedWorker();
    if (!this.worker) {
      this.onPage();
      return;
    }
    this.worker.sockets.set(this.id, this);
    this.post({ t: 'open', id: this.id, url: this.url, protocols });
  }

  /** A WebSocket on the page, with this object's handlers (the worker could not start). */
  private onPage(): void {
    const ws = (this.socket = new WebSocket(this.url, this.protocols));
    const id = this.id;
    ws.binaryType = 'arraybuffer';
    ws.onopen = () => this.fromWorker({ t: 'open', id });
    ws.onmessage = (ev: MessageEvent<ArrayBuffer | string>) => this.fromWorker({ t: 'message', id, data: ev.data });
    ws.onerror = () => this.fromWorker({ t: 'error', id });
    ws.onclose = (ev) => this.fromWorker({ t: 'close', id, code: ev.code, reason: ev.reason });
  }

  /** The worker died: a socket that was still waiting for it moves to the page when it never started; otherwise it is closed. */
  workerFailed(neverStarted: boolean): void {
    this.worker = null;
    if (neverStarted && this.state === CONNECTING) this.onPage();
    else this.closed(1006, 'the socket worker failed');
  }

  private post(m: ToWorker): void {
    this.worker?.worker.postMessage(m);
  }

  get readyState(): number {
    return this.state;
  }

  send(data: Uint8Array): void {
    if (this.state === CONNECTING) throw new DOMException('the socket is still connecting', 'InvalidStateError');
    if (this.state !== OPEN) return; // as a WebSocket does while closing: dropped
    if (this.socket) return this.socket.send(data);
    // Copied, not transferred: the caller may reuse the buffer. A view is sliced first, since cloning one copies
    // all of the buffer behind it.
    this.post({ t: 'send', id: this.id, data: data.byteOffset === 0 && data.byteLength === data.buffer.byteLength ? data : data.slice() });
  }

  close(code?: number, reason?: string): void {
    if (this.state === CLOSING || this.state === CLOSED) return;
    this.state = CLOSING;
    if (this.socket) this.socket.close(code, reason);
    else this.post({ t: 'close', id: this.id, code, reason });
  }

  /** What the worker (or the page socket) says about this socket. */
  fromWorker(m: FromWorker): void {
    if (this.state === CLOSED) return;
    if (m.t === 'records') {
      const frame: IndexedRecordsFrame = m.frame;
      frame.index = m.index;
      this.onmessage?.({ data: new DecodedFrame(frame) });
    } else if (m.t === 'message') this.onmessage?.({ data: m.data });
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
    this.worker?.sockets.delete(this.id);
    this.onclose?.({ code, reason });
  }
}
