/**
 * One WebSocket to the hub, kept open: hello (with the token), requests
 * matched to replies by id, reconnect with capped exponential backoff and
 * full jitter, browser `online`/`offline`/`visibilitychange`, token refresh
 * in band (`auth` frame) before expiry, and auth failures reported instead of
 * retried forever.
 *
 * The producer and the consumers sit on top: they hear `open` (re-send,
 * re-subscribe) and `push` (records, assignments, errors for a subscription).
 */
import { LIMITS, PROTOCOL_VERSION, WS_SUBPROTOCOL, TributaryError, decodeServerFrame, encodeCbor, errorFromWire, type ErrorCode, type ErrorFrame, type ServerFrame } from '../protocol/index.ts';
import { Emitter } from './emitter.ts';
import { ClientError } from './errors.ts';
import { readTokenClaims, refreshDelayMs, resolveToken, type TokenSource } from './token.ts';

/** The WebSocket API subset the client uses (browsers' WebSocket, `ws` in Node). */
export interface WebSocketLike {
  binaryType: string;
  readonly readyState: number;
  onopen: ((ev: unknown) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  send(data: Uint8Array): void;
  close(code?: number, reason?: string): void;
}
/**
 * A frame a WebSocketLike decoded itself (WorkerWebSocket's worker decodes
 * and checks `records` frames off the page's thread): handed to onmessage
 * as `data` instead of the frame's bytes.
 */
export class DecodedFrame {
  constructor(readonly frame: ServerFrame) {}
}

export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => WebSocketLike;

export type ConnectionState = 'connecting' | 'open' | 'waiting' | 'offline' | 'unauthorized' | 'closed';

export interface ConnectionOptions {
  url: string;
  token?: TokenSource;
  clientName?: string;
  WebSocket: WebSocketConstructor;
  /** First reconnect delay bound; doubles per failed attempt. */
  backoffInitialMs?: number;
  /** Cap of the reconnect delay bound. */
  backoffMaxMs?: number;
  /** A request without a reply for this long means a dead connection: reconnect. */
  requestTimeoutMs?: number;
  /** Ping after this much silence from the hub. */
  keepAliveMs?: number;
  /** Give up after this many auth failures in a row, even with a token function. */
  maxAuthFailures?: number;
}

export interface ConnectionEvents extends Record<string, unknown> {
  state: ConnectionState;
  /** A new session is ready (after hello); `subject` is the token's `sub`. */
  open: { subject: string };
  /** Frames not answering a request: records, assignments, subscription errors. */
  push: ServerFrame;
  error: Error;
}

type Reply = Exclude<ServerFrame, ErrorFrame> & { id: number };
type Outgoing = { t: string } & Record<string, unknown>;

const AUTH_CODES = new Set<ErrorCode>(['UNAUTHENTICATED', 'TOKEN_INVALID', 'TOKEN_EXPIRED', 'FORBIDDEN', 'ORIGIN_FORBIDDEN', 'SUBJECT_CHANGED']);
const AUTH_CLOSE_CODES = new Set([4401, 4403]);
const WS_OPEN = 1;

interface Pending {
  resolve: (f: Reply) => void;
  reject: (e: Error) => void;
  timer: ReturnType<typeof setTimeout>;
}

export class Connection extends Emitter<ConnectionEvents> {
  state: ConnectionState = 'waiting';
  /** Subject of the token of the current (or last) session. */
  subject = '';
  /** The hub's frame limit, from its answer to hello (the protocol's default until then). */
  maxFrameBytes: number = LIMITS.maxFrameBytes;
  private ws?: WebSocketLike;
  private nextId = 1;
  private pending = new Map<number, Pending>();
  private attempt = 0;
  private authFailures = 0;
  private reconnectTimer?: ReturnType<typeof setTimeout>;
  private refreshTimer?: ReturnType<typeof setTimeout>;
  private keepAliveTimer?: ReturnType<typeof setInterval>;
  private lastInboundMs = 0;
  private closed = false;
  /** The token of the latest connect attempt (or of tokenSubject()), so one token call serves both. */
  private lastToken?: Promise<string | undefined>;
  private readonly o: Required<Omit<ConnectionOptions, 'token' | 'clientName'>> & Pick<ConnectionOptions, 'token' | 'clientName'>;
  private readonly unlisten: Array<() => void> = [];

  constructor(opts: ConnectionOptions) {
    super();
    const given = Object.fromEntries(Object.entries(opts).filter(([, v]) => v !== undefined)) as ConnectionOptions;
    this.o = { backoffInitialMs: 250, backoffMaxMs: 30_000, requestTimeoutMs: 30_000, keepAliveMs: 25_000, maxAuthFailures: 3, ...given };
    this.watchBrowser();
  }

  /** Starts connecting (idempotent). */
  start(): void {
    if (this.closed || this.ws || this.reconnectTimer) return;
    if (isOffline()) return this.setState('offline');
    void this.connect();
  }

  private setState(s: ConnectionState): void {
    if (this.state === s) return;
    this.state = s;
    this.emit('state', s);
  }

  get isOpen(): boolean {
    return this.state === 'open';
  }

  private watchBrowser(): void {
    const g = globalThis as {
      addEventListener?: (t: string, l: () => void) => void;
      removeEventListener?: (t: string, l: () => void) => void;
      document?: { visibilityState?: string; addEventListener?: (t: string, l: () => void) => void; removeEventListener?: (t: string, l: () => void) => void };
    };
    if (typeof g.addEventListener !== 'function' || !g.document) return;
    const online = () => this.retryNow();
    const offline = () => {
      // The OS says there is no network: drop the socket now rather than wait for TCP to notice.
      this.dropSocket(1000, 'offline');
      this.setState('offline');
    };
    const visible = () => {
      if (g.document?.visibilityState === 'visible') this.retryNow();
    };
    g.addEventListener('online', online);
    g.addEventListener('offline', offline);
    g.document.addEventListener?.('visibilitychange', visible);
    this.unlisten.push(() => {
      g.removeEventListener?.('online', online);
      g.removeEventListener?.('offline', offline);
      g.document?.removeEventListener?.('visibilitychange', visible);
    });
  }

  /** Reconnect at once if waiting (network back, tab visible again). */
  retryNow(): void {
    if (this.closed || this.state === 'unauthorized' || this.ws) return;
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = undefined;
    this.attempt = 0;
    this.start();
  }

  private async connect(): Promise<void> {
    this.setState('connecting');
    let token: string | undefined;
    try {
      token = await (this.lastToken = resolveToken(this.o.token));
    } catch (err) {
      this.emit('error', new ClientError('AUTH_FAILED', `token function failed: ${err instanceof Error ? err.message : String(err)}`, { cause: err }));
      return this.scheduleReconnect();
    }
    if (this.closed) return;
    let ws: WebSocketLike;
    try {
      ws = new this.o.WebSocket(this.o.url, [WS_SUBPROTOCOL]);
    } catch (err) {
      this.emit('error', err instanceof Error ? err : new Error(String(err)));
      return this.scheduleReconnect();
    }
    ws.binaryType = 'arraybuffer';
    this.ws = ws;
    ws.onopen = () => void this.hello(ws, token);
    ws.onmessage = (ev) => this.onMessage(ev.data);
    ws.onerror = () => undefined; // onclose follows and carries the decision
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;
      // The hub's reason starts with its code: "TOKEN_EXPIRED: token expired; …".
      const details = { code: /^([A-Z_]+):/.exec(ev.reason)?.[1] ?? 'UNAUTHENTICATED', closeCode: ev.code };
      this.onSocketGone(AUTH_CLOSE_CODES.has(ev.code) ? new ClientError('AUTH_FAILED', `hub closed the connection: ${ev.code} ${ev.reason}`, { details }) : undefined);
    };
  }

  /** Subject of the token in use, or about to be: the latest one resolved (one is resolved if none was). */
  async tokenSubject(): Promise<string> {
    if (this.state === 'open') return this.subject;
    this.lastToken ??= resolveToken(this.o.token);
    return readTokenClaims(await this.lastToken).sub;
  }

  private async hello(ws: WebSocketLike, token: string | undefined): Promise<void> {
    const frame: Outgoing = { t: 'hello', v: PROTOCOL_VERSION };
    if (this.o.clientName) frame.client = this.o.clientName;
    if (token) frame.token = token;
    let ok: Reply;
    try {
      ok = await this.request(frame);
    } catch (err) {
      if (this.ws !== ws) return;
      if (err instanceof TributaryError && AUTH_CODES.has(err.code)) return this.authFailed(err);
      this.emit('error', err as Error);
      return this.dropSocket(1000, 'hello failed');
    }
    if (this.ws !== ws) return;
    this.attempt = 0;
    this.authFailures = 0;
    this.subject = readTokenClaims(token).sub;
    const limit = (ok as { maxFrameBytes?: unknown }).maxFrameBytes;
    if (typeof limit === 'number' && limit > 0) this.maxFrameBytes = limit;
    this.lastInboundMs = Date.now();
    this.scheduleRefresh(token);
    this.keepAliveTimer = setInterval(() => this.keepAlive(), Math.max(1000, this.o.keepAliveMs / 2));
    this.setState('open');
    this.emit('open', { subject: this.subject });
  }

  private authFailed(cause: TributaryError | ClientError): void {
    this.authFailures++;
    const err = cause instanceof ClientError ? cause : new ClientError('AUTH_FAILED', `${cause.code}: ${cause.message}`, { cause, details: { code: cause.code } });
    this.emit('error', err);
    const ws = this.ws;
    this.ws = undefined;
    this.teardown(err);
    closeQuietly(ws, 1000, 'auth failed');
    // A fixed token will not get better; a token function may, a few times.
    if (typeof this.o.token !== 'function' || this.authFailures >= this.o.maxAuthFailures) return this.setState('unauthorized');
    this.scheduleReconnect();
  }

  private scheduleRefresh(token: string | undefined, minMs = 0): void {
    clearTimeout(this.refreshTimer);
    const exp = readTokenClaims(token).expMs;
    if (exp === undefined || typeof this.o.token !== 'function') return;
    // setTimeout's limit is 2^31-1 ms; a longer wait is re-armed on the next session anyway.
    const delay = Math.min(refreshDelayMs(exp, Date.now(), minMs), 2 ** 31 - 1);
    this.refreshTimer = setTimeout(() => void this.refresh(), delay);
  }

  private async refresh(): Promise<void> {
    const ws = this.ws;
    if (!ws || this.state !== 'open') return;
    try {
      const token = await resolveToken(this.o.token);
      if (!token || this.ws !== ws) return;
      await this.request({ t: 'auth', token });
      // At most one refresh a second, whatever the tokens' lifetimes or the clocks say.
      this.scheduleRefresh(token, 1000);
    } catch (err) {
      if (this.ws !== ws) return;
      if (err instanceof TributaryError && AUTH_CODES.has(err.code)) return this.authFailed(err);
      // Not an auth verdict (a lost connection, a failing token function): try again soon.
      this.refreshTimer = setTimeout(() => void this.refresh(), 5_000);
    }
  }

  private keepAlive(): void {
    if (this.state !== 'open') return;
    if (Date.now() - this.lastInboundMs < this.o.keepAliveMs) return;
    // A timeout closes the socket; a close already reconnects.
    this.request({ t: 'ping' }, Math.min(this.o.requestTimeoutMs, 10_000)).catch(() => undefined);
  }

  private onMessage(data: unknown): void {
    this.lastInboundMs = Date.now();
    // Only records frames come decoded (never a reply): straight to their subscription.
    if (data instanceof DecodedFrame) return void this.emit('push', data.frame);
    const bytes = data instanceof ArrayBuffer ? new Uint8Array(data) : data instanceof Uint8Array ? data : undefined;
    if (!bytes) return;
    const r = decodeServerFrame(bytes);
    if (!r.ok) {
      this.emit('error', r.error);
      return;
    }
    const f = r.frame;
    const id = (f as { id?: unknown }).id;
    if ((f.t === 'ok' || f.t === 'ack' || f.t === 'error') && typeof id === 'number' && this.pending.has(id)) {
      const p = this.pending.get(id)!;
      this.pending.delete(id);
      clearTimeout(p.timer);
      if (f.t === 'error') p.reject(errorFromWire(f));
      else p.resolve(f as Reply);
      return;
    }
    if (f.t === 'error' && f.sub === undefined) {
      const err = errorFromWire(f);
      if (AUTH_CODES.has(err.code)) return this.authFailed(err);
      this.emit('error', err);
      return;
    }
    this.emit('push', f);
  }

  /** Sends a request and resolves with its reply; rejects with the hub's TributaryError or DISCONNECTED. */
  request(frame: Outgoing, timeoutMs = this.o.requestTimeoutMs, onId?: (id: number) => void): Promise<Reply> {
    return this.requestEncoded((id) => encodeCbor({ ...frame, id }), timeoutMs, onId);
  }

  /** `request` of a frame the caller encodes itself, with the id given (the outbox's ready batches: no copy into a frame). */
  requestEncoded(encode: (id: number) => Uint8Array, timeoutMs = this.o.requestTimeoutMs, onId?: (id: number) => void): Promise<Reply> {
    const ws = this.ws;
    if (!ws || ws.readyState !== WS_OPEN) return Promise.reject(new ClientError('DISCONNECTED', 'not connected'));
    const id = this.nextId++;
    onId?.(id);
    return new Promise<Reply>((resolve, reject) => {
      const timer = setTimeout(() => {
        // No reply in time: the connection is as good as dead, and a produce that may or may not
        // have landed must be re-sent on a fresh one, in order.
        if (this.ws === ws) this.dropSocket(1000, 'request timed out');
      }, timeoutMs);
      this.pending.set(id, { resolve, reject, timer });
      try {
        ws.send(encode(id));
      } catch (err) {
        this.pending.delete(id);
        clearTimeout(timer);
        reject(new ClientError('DISCONNECTED', `send failed: ${err instanceof Error ? err.message : String(err)}`));
      }
    });
  }

  /** Sends a frame that has no reply (credit). Dropped silently when not connected: the next session starts fresh. */
  post(frame: Outgoing): void {
    const ws = this.ws;
    if (!ws || ws.readyState !== WS_OPEN) return;
    try {
      ws.send(encodeCbor(frame));
    } catch {
      // The socket is closing: its close event follows and starts the next session.
    }
  }

  /** Closes the current socket (if any) and reconnects after backoff. */
  dropSocket(code = 1000, reason = ''): void {
    const ws = this.ws;
    if (!ws) return;
    closeQuietly(ws, code, reason);
    this.onSocketGone();
  }

  private teardown(err: Error): void {
    clearTimeout(this.refreshTimer);
    clearInterval(this.keepAliveTimer);
    this.keepAliveTimer = undefined;
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      p.reject(err);
    }
    this.pending.clear();
  }

  private onSocketGone(authError?: ClientError): void {
    if (!this.ws) return;
    const ws = this.ws;
    this.ws = undefined;
    ws.onopen = ws.onmessage = ws.onclose = null;
    if (authError) return this.authFailed(authError);
    this.teardown(new ClientError('DISCONNECTED', 'connection lost before the hub answered'));
    if (this.closed) return;
    if (isOffline()) return this.setState('offline');
    this.scheduleReconnect();
  }

  /** Full jitter (AWS architecture blog, "Exponential Backoff and Jitter"): uniform in [0, min(cap, base·2^n)]. */
  private scheduleReconnect(): void {
    if (this.closed || this.reconnectTimer) return;
    const bound = Math.min(this.o.backoffMaxMs, this.o.backoffInitialMs * 2 ** Math.min(this.attempt, 30));
    this.attempt++;
    const delay = Math.random() * bound;
    this.setState('waiting');
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      this.start();
    }, delay);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = undefined;
    for (const u of this.unlisten) u();
    if (this.ws) this.ws.onopen = this.ws.onmessage = this.ws.onclose = null;
    closeQuietly(this.ws, 1000, 'client closed');
    this.ws = undefined;
    this.teardown(new ClientError('CLOSED', 'client closed'));
    this.setState('closed');
  }
}

function closeQuietly(ws: WebSocketLike | undefined, code: number, reason: string): void {
  try {
    ws?.close(code, reason);
  } catch {
    /* already closing */
  }
}

function isOffline(): boolean {
  const nav = (globalThis as { navigator?: { onLine?: boolean } }).navigator;
  const doc = (globalThis as { document?: unknown }).document;
  // Only browsers' navigator.onLine means anything; Node 21+ has a navigator without it.
  return doc !== undefined && nav?.onLine === false;
}
