/**
 * A tiny promise-based WebSocket client for tests, over `ws`, speaking the
 * hub's CBOR frames. Not the web client: no reconnect, no outbox; just
 * enough to drive a real hub and see exactly what it sends.
 *
 *   const c = await WsClient.connect(hub.wsUrl);
 *   const ack = await c.produce('orders', [{ k: 'a', v: bytes('x') }], { pid: 'p1', seq: 0 });
 *   const s = await c.subscribe('orders', { from: 'earliest' });
 *   const recs = await c.waitForRecords(s.sub, 10);
 *   await c.close();
 */
import WebSocket from 'ws';
import { decodeBatches } from '../../protocol/batch.ts';
import { decodeCbor, encodeCbor } from '../../protocol/codec.ts';
import { errorFromWire, TributaryError } from '../../protocol/errors.ts';
import type { AckFrame, ErrorFrame, OkFrame, RecordsFrame, StartPosition, WireRecord } from '../../protocol/frames.ts';
import type { StoredRecord } from '../../protocol/record.ts';

export const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);
export const text = (b: Uint8Array | null): string => (b === null ? '' : new TextDecoder().decode(b));

export interface SubscribeOptions {
  from?: StartPosition;
  partitions?: number[];
  positions?: Record<string, number>;
  credit?: number;
  onOutOfRange?: 'earliest' | 'latest' | 'error';
  group?: string;
}

export interface SubscribeOk extends OkFrame {
  sub: number;
  partitions: Array<{ p: number; offset: number; hw: number }>;
}

/** A record as delivered, with the partition it came from. */
export type DeliveredRecord = StoredRecord & { partition: number };

interface SubState {
  /** Next offset expected per partition: records below it are skipped (batches may start below). */
  next: Map<number, number>;
  records: DeliveredRecord[];
  frames: RecordsFrame[];
  errors: ErrorFrame[];
  bytes: number;
}

/** The hub answered the upgrade with an HTTP status instead of switching protocols. */
export class UpgradeRefused extends Error {
  constructor(
    readonly status: number,
    readonly body: string,
  ) {
    super(`upgrade refused: ${status} ${body}`);
  }
}

export class WsClient {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (f: OkFrame | AckFrame) => void; reject: (e: TributaryError) => void }>();
  private readonly subs = new Map<number, SubState>();
  private waiters: Array<() => void> = [];
  /** Error frames that carried no id (and no sub). */
  readonly unsolicitedErrors: ErrorFrame[] = [];
  readonly closed: Promise<{ code: number; reason: string }>;
  /** The close code and reason once closed (for a failing test's message). */
  closeInfo?: { code: number; reason: string };
  /** Decode delivered batches into records and keep the frames (off: count bytes only, keep nothing — raw-throughput tests). */
  decode = true;

  private constructor(readonly ws: WebSocket) {
    this.closed = new Promise((resolve) =>
      ws.once('close', (code, reason) => {
        for (const p of this.pending.values()) p.reject(new TributaryError('INTERNAL', `connection closed (${code} ${reason.toString()})`));
        this.pending.clear();
        this.wake();
        this.closeInfo = { code, reason: reason.toString() };
        resolve(this.closeInfo);
      }),
    );
    ws.on('message', (data: Buffer) => this.onMessage(data));
  }

  /**
   * Opens a connection. `options` go to `ws` as they are (origin, ca,
   * rejectUnauthorized, autoPong, …). A refused upgrade rejects with an
   * UpgradeRefused carrying the status and body.
   */
  static connect(url: string, opts: { protocols?: string[]; headers?: Record<string, string>; options?: WebSocket.ClientOptions } = {}): Promise<WsClient> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, opts.protocols ?? [], { headers: opts.headers, maxPayload: 64 * 1024 * 1024, ...opts.options });
      ws.binaryType = 'nodebuffer';
      const client = new WsClient(ws);
      ws.once('open', () => resolve(client));
      ws.once('error', reject);
      ws.once('unexpected-response', (req, res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.on('end', () => {
          req.destroy();
          reject(new UpgradeRefused(res.statusCode ?? 0, body));
        });
      });
    });
  }

  /** Sends a request frame (an id is assigned) and resolves with its ok/ack, or rejects with the error it got. */
  request<T extends OkFrame | AckFrame = OkFrame>(frame: Record<string, unknown>): Promise<T> {
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (f: OkFrame | AckFrame) => void, reject });
      this.sendRaw(encodeCbor({ ...frame, id }));
    });
  }

  /** Like request, for hand-made bytes: `encode` gets the id to put in the frame. */
  requestRaw<T extends OkFrame | AckFrame = OkFrame>(encode: (id: number) => Uint8Array): Promise<T> {
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (f: OkFrame | AckFrame) => void, reject });
      this.sendRaw(encode(id));
    });
  }

  sendRaw(bytes: Uint8Array): void {
    this.ws.send(bytes, { binary: true });
  }

  hello(token?: string): Promise<OkFrame> {
    return this.request({ t: 'hello', v: 1, client: 'test', ...(token ? { token } : {}) });
  }

  produce(topic: string, records: WireRecord[], opts: { pid?: string; seq?: number } = {}): Promise<AckFrame> {
    return this.request<AckFrame>({ t: 'produce', topic, records, ...opts });
  }

  async subscribe(topic: string, opts: SubscribeOptions = {}): Promise<SubscribeOk> {
    const id = this.nextId;
    // Register before sending: records frames may follow the ok in the same read.
    const state: SubState = { next: new Map(), records: [], frames: [], errors: [], bytes: 0 };
    this.subs.set(id, state);
    try {
      return (await this.request({ t: 'subscribe', topic, from: opts.from ?? 'earliest', ...opts })) as SubscribeOk;
    } catch (e) {
      this.subs.delete(id);
      throw e;
    }
  }

  unsubscribe(subId: number): Promise<OkFrame> {
    return this.request({ t: 'unsubscribe', sub: subId });
  }

  credit(subId: number, bytesToAdd: number): void {
    this.sendRaw(encodeCbor({ t: 'credit', sub: subId, bytes: bytesToAdd }));
  }

  records(subId: number): DeliveredRecord[] {
    return this.subs.get(subId)?.records ?? [];
  }

  frames(subId: number): RecordsFrame[] {
    return this.subs.get(subId)?.frames ?? [];
  }

  errors(subId: number): ErrorFrame[] {
    return this.subs.get(subId)?.errors ?? [];
  }

  deliveredBytes(subId: number): number {
    return this.subs.get(subId)?.bytes ?? 0;
  }

  /** Waits until `pred()` holds (re-checked on every incoming frame) or the timeout passes. */
  async until(pred: () => boolean, timeoutMs = 10_000, what = 'condition'): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!pred()) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.min(left, 200));
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  async waitForRecords(subId: number, count: number, timeoutMs = 10_000): Promise<DeliveredRecord[]> {
    await this.until(() => this.records(subId).length >= count, timeoutMs, `${count} records on subscription ${subId} (have ${this.records(subId).length})`);
    return this.records(subId);
  }

  /** Runs `fn` with the socket corked: the frames it sends leave in one write, and the hub reads them together. */
  corked<T>(fn: () => T): T {
    const socket = (this.ws as unknown as { _socket: { cork(): void; uncork(): void } })._socket;
    socket.cork();
    try {
      return fn();
    } finally {
      socket.uncork();
    }
  }

  /** Stops reading from the socket (TCP backpressure builds up at the hub). */
  pauseReading(): void {
    // ws's own pause, not the socket's: ws pauses and resumes the socket itself for its receiver's
    // backpressure, and would undo (or be undone by) a pause behind its back.
    this.ws.pause();
  }

  /** For a failing test's message: whether ws and its socket are paused. */
  readingState(): string {
    const socket = (this.ws as unknown as { _socket?: { isPaused(): boolean; readableLength: number } })._socket;
    return `ws ${this.ws.isPaused ? 'paused' : 'reading'}, socket ${socket?.isPaused() ? 'paused' : 'flowing'} (${socket?.readableLength ?? 0} bytes unread)`;
  }

  resumeReading(): void {
    this.ws.resume();
  }

  async close(): Promise<void> {
    if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING) this.ws.close(1000);
    await Promise.race([this.closed, new Promise((r) => setTimeout(r, 2000))]);
    if (this.ws.readyState !== WebSocket.CLOSED) this.ws.terminate();
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  private onMessage(data: Buffer): void {
    const f = decodeCbor(new Uint8Array(data.buffer, data.byteOffset, data.byteLength)) as Record<string, unknown>;
    switch (f.t) {
      case 'ok':
      case 'ack': {
        const p = this.pending.get(f.id as number);
        // A subscribe's ok: note where each partition starts before its records frames (same read) are handled.
        const s = f.t === 'ok' && Array.isArray(f.partitions) ? this.subs.get(f.id as number) : undefined;
        if (s) for (const part of f.partitions as SubscribeOk['partitions']) if (!s.next.has(part.p)) s.next.set(part.p, part.offset);
        if (p) {
          this.pending.delete(f.id as number);
          p.resolve(f as unknown as OkFrame);
        }
        break;
      }
      case 'error': {
        const e = f as unknown as ErrorFrame;
        if (e.id !== undefined && this.pending.has(e.id)) {
          const p = this.pending.get(e.id)!;
          this.pending.delete(e.id);
          const { t: _t, id: _id, ...body } = e;
          p.reject(errorFromWire(body));
        } else if (e.sub !== undefined && this.subs.has(e.sub)) this.subs.get(e.sub)!.errors.push(e);
        else this.unsolicitedErrors.push(e);
        break;
      }
      case 'records': {
        const r = f as unknown as RecordsFrame;
        const s = this.subs.get(r.sub);
        if (!s) break;
        s.bytes += r.b.length;
        if (this.decode) {
          s.frames.push(r);
          const from = s.next.get(r.p) ?? 0;
          const recs = decodeBatches(r.b, from);
          for (const rec of recs) s.records.push({ ...rec, partition: r.p });
          if (recs.length) s.next.set(r.p, recs[recs.length - 1].offset + 1);
        }
        break;
      }
    }
    this.wake();
  }
}
