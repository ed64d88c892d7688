/**
 * One WebSocket connection: who it is, its subscriptions, its requests in
 * flight, and its output with backpressure.
 *
 * Output: frames are queued and flushed once per microtask inside one
 * ws.cork (acks of one group commit and the records frames they wake leave
 * in one write). The connection is writable while the bytes uWS holds plus
 * the queue stay under `sendHighWaterBytes`; above it the subscriptions stop
 * reading until uWS's drain. Paused longer than `slowConsumerTimeoutMs`, or
 * holding more than `maxBufferedBytesPerConnection`, the connection is closed
 * with 4429 SLOW_CONSUMER: one slow consumer costs bounded memory and never
 * slows the others.
 */
import { encodeCbor, encodeRecordsFrame } from '../../protocol/codec.ts';
import { closeCodeOf, TributaryError, type ErrorCode } from '../../protocol/errors.ts';
import type { AssignmentFrame, ServerFrame } from '../../protocol/frames.ts';
import type { ConnectionQuota } from '../limits/index.ts';
import type { Subscription } from '../broker/subscription.ts';
import type { GroupMemberSink } from '../broker/group-coordinator.ts';
import type { Principal } from '../auth/index.ts';
import type { WebSocket } from 'uWebSockets.js';

export interface BackpressureSettings {
  sendHighWaterBytes: number;
  maxBufferedBytesPerConnection: number;
}

export interface ConnectionEvents {
  paused(conn: Connection): void;
  resumed(conn: Connection): void;
  slowConsumer(conn: Connection): void;
  /** A subscription ended by itself (its topic was deleted): forget it. */
  subscriptionEnded(conn: Connection, subId: number): void;
  error(err: TributaryError): void;
}

/** What a connection needs of the token-expiry schedule (server/auth/expiry-schedule.ts) to leave it on close. */
export interface ExpiryWaiters {
  remove(conn: Connection, atMs: number): void;
}

/**
 * A records frame queued for the flush, written only then (flush), into the
 * buffer every connection of the process shares: uWS's send copies a frame
 * before it returns (into its own send buffer, or the socket), so one reused
 * buffer serves every frame, where a new one per frame cost fresh memory
 * (page faults, zeroing, external-memory GC) per ~1 MB of replayed batches.
 */
class QueuedRecords {
  constructor(
    readonly subId: number,
    readonly topic: string,
    readonly partition: number,
    readonly parts: readonly Uint8Array[],
    readonly size: number,
    readonly highWatermark: number,
  ) {}
}

/** The shared frame buffer (see QueuedRecords): grown to the largest frame written, kept. */
let frameBuffer = new Uint8Array(0);

function frameBufferOf(length: number): Uint8Array {
  if (frameBuffer.length < length) frameBuffer = new Uint8Array(Math.max(length, 2 * frameBuffer.length, 1024 * 1024));
  return frameBuffer;
}

/** A queued frame's bytes: its own, or a records frame written into the shared buffer (valid until the next one). */
function frameBytes(f: Uint8Array | QueuedRecords): Uint8Array {
  return f instanceof QueuedRecords ? encodeRecordsFrame(f.subId, f.topic, f.partition, f.parts, f.size, f.highWatermark, frameBufferOf) : f;
}

/** Bytes a records frame adds to its batches, at most (map keys and values but the topic, the byte string's head). */
const RECORDS_FRAME_OVERHEAD = 64;

/** uWS close reasons are at most 123 bytes. */
function reasonOf(code: ErrorCode, message: string): string {
  const s = `${code}: ${message}`;
  return Buffer.byteLength(s) <= 123
    ? s
    : Buffer.from(s)
        .subarray(0, 120)
        .toString('utf8')
        .replace(/\uFFFD+$/, '') + '...';
}

export class Connection implements GroupMemberSink {
  ws: WebSocket<{ conn: Connection }> | null = null;
  closed = false;
  /** Who is connected; before authentication (auth on) a principal that may do nothing. */
  principal: Principal;
  /** Whether `principal` came from a verified token (always true with auth off). */
  authenticated: boolean;
  /** The subject this connection is counted under in ConnectionLimits (null: counted in the total only). */
  countedSubject: string | null = null;
  /** Set at upgrade when the connection must be refused right after opening (not counted). */
  refusal: TributaryError | null = null;
  /** Produce rate, subscriptions and requests in flight of this connection. */
  readonly quota: ConnectionQuota;
  /** The client name from hello, if any (shown in group descriptions). */
  clientName = '';
  /** Closes the connection if it has not authenticated in time (auth on). */
  authTimer: NodeJS.Timeout | null = null;
  /**
   * Set while this connection waits in the token-expiry schedule, at
   * `principal.expiresAtMs` (ws-auth.ts leaves it before changing the
   * principal): one schedule for every connection rather than a timer and a
   * closure each.
   */
  expiryWaiters: ExpiryWaiters | null = null;
  /** When the peer last sent anything (a frame or a pong), for the idle timeout. */
  lastReceivedMs = Date.now();
  /** Whether the hub has pinged since `lastReceivedMs`. */
  pinged = false;
  /** ms since epoch when the send buffer passed the high-water mark; 0 = not paused. */
  pausedSinceMs = 0;
  /** uWS's buffered amount at the last sweep while paused (nudgeIfStalled); -1 = none. */
  private bufferedAtSweep = -1;
  readonly remote: string;

  // Created on first use: most connections of a large fleet sit idle with no subscription and nothing queued,
  // and two empty Maps and an array cost about 450 bytes of heap per connection (measured with heap snapshots).
  private subs: Map<number, Subscription> | null = null;
  private memberIds: Map<number, string> | null = null;
  private queue: (Uint8Array | QueuedRecords)[] | null = null;
  private queuedBytes = 0;
  private flushScheduled = false;
  /**
   * Set when writable() said no while not paused: the queue alone was over the mark (a large frame queued by
   * another subscription or partition in the same turn). The flush then wakes the subscriptions, as a drain
   * would: no drain follows a flush that leaves uWS under the mark, and without this a subscription refused so
   * stopped for good (found with a test of several partitions with 1.2 MB batches on one connection).
   */
  private refusedWhileQueued = false;

  constructor(
    principal: Principal,
    authenticated: boolean,
    quota: ConnectionQuota,
    remote: string,
    private readonly settings: BackpressureSettings,
    private readonly events: ConnectionEvents,
  ) {
    this.principal = principal;
    this.authenticated = authenticated;
    this.quota = quota;
    this.remote = remote;
  }

  /** Subscriptions by id. */
  get subscriptions(): Map<number, Subscription> {
    return (this.subs ??= new Map());
  }

  /** Subscriptions that are consumer-group members: subscription id → member id. */
  get members(): Map<number, string> {
    return (this.memberIds ??= new Map());
  }

  private buffered(): number {
    return this.ws && !this.closed ? this.ws.getBufferedAmount() + this.queuedBytes : 0;
  }

  // ---------- SubscriptionSink ----------

  writable(): boolean {
    if (this.closed || this.pausedSinceMs !== 0) return false;
    if (this.buffered() < this.settings.sendHighWaterBytes) return true;
    this.refusedWhileQueued = true;
    return false;
  }

  /**
   * Queued as it is and written at the flush into the shared frame buffer (QueuedRecords), one copy of the
   * batches. Through encodeRecordsFrame for one part too: cbor-x's encoder grew its buffer to 4x a ~1 MB frame
   * and copied it on the way, ~40% of the hub's main thread while it served a stream app's replay
   * (bench/streams.ts with STREAMS_HUB_CPU_PROF).
   */
  records(subId: number, topic: string, partition: number, parts: readonly Uint8Array[], size: number, highWatermark: number): void {
    this.enqueueFrame(new QueuedRecords(subId, topic, partition, parts, size, highWatermark), size + RECORDS_FRAME_OVERHEAD + 3 * topic.length);
  }

  error(subId: number, err: TributaryError, partition?: number): void {
    this.events.error(err);
    const frame: Record<string, unknown> = { t: 'error', sub: subId, code: err.code, message: err.message, retriable: err.retriable, ...err.details };
    if (partition !== undefined) frame.p = partition;
    this.enqueue(encodeCbor(frame));
    if (partition === undefined) this.events.subscriptionEnded(this, subId);
  }

  assignment(frame: AssignmentFrame): void {
    this.enqueue(encodeCbor(frame));
  }

  // ---------- replies ----------

  send(frame: ServerFrame): void {
    this.enqueue(encodeCbor(frame));
  }

  sendError(err: TributaryError, id?: number): void {
    this.events.error(err);
    this.enqueueError(err, id);
  }

  /** Answers request `id` with `err`, then closes with it (counted once). */
  failAndClose(err: TributaryError, id: number): void {
    this.enqueueError(err, id);
    this.closeWith(err);
  }

  private enqueueError(err: TributaryError, id: number | undefined): void {
    const frame: Record<string, unknown> = { t: 'error', code: err.code, message: err.message, retriable: err.retriable, ...err.details };
    if (id !== undefined) frame.id = id;
    this.enqueue(encodeCbor(frame));
  }

  /** Flushes what is queued, then closes with 4000 + status and a reason naming the code. */
  closeWith(err: TributaryError): void {
    if (this.closed || !this.ws) return;
    this.events.error(err);
    this.flush();
    const ws = this.ws;
    this.markClosed();
    ws.end(closeCodeOf(err.code), reasonOf(err.code, err.message));
  }

  closeNormally(code: number, reason: string): void {
    if (this.closed || !this.ws) return;
    this.flush();
    const ws = this.ws;
    this.markClosed();
    ws.end(code, reason);
  }

  /** uWS reported the close (or we closed): never touch the socket again. */
  markClosed(): void {
    this.clearTimers();
    this.closed = true;
    this.queue = null;
    this.queuedBytes = 0;
    this.ws = null;
    if (this.subs) for (const s of this.subs.values()) s.close();
  }

  clearTimers(): void {
    if (this.authTimer) clearTimeout(this.authTimer);
    this.authTimer = null;
    this.clearExpiry();
  }

  /** Leaves the token-expiry schedule, if waiting in it. */
  clearExpiry(): void {
    if (this.expiryWaiters && this.principal.expiresAtMs !== null) this.expiryWaiters.remove(this, this.principal.expiresAtMs);
    this.expiryWaiters = null;
  }

  // ---------- output ----------

  private enqueue(bytes: Uint8Array): void {
    this.enqueueFrame(bytes, bytes.length);
  }

  private enqueueFrame(frame: Uint8Array | QueuedRecords, bytes: number): void {
    if (this.closed) return;
    (this.queue ??= []).push(frame);
    this.queuedBytes += bytes;
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      queueMicrotask(() => this.flush());
    }
  }

  flush(): void {
    this.flushScheduled = false;
    const ws = this.ws;
    if (this.closed || !ws || this.queue === null || this.queue.length === 0) return;
    const queue = this.queue;
    this.queue = null;
    this.queuedBytes = 0;
    let dropped = false;
    ws.cork(() => {
      for (const f of queue) if (ws.send(frameBytes(f), true) === 2) dropped = true;
    });
    const buffered = ws.getBufferedAmount();
    if (dropped || buffered > this.settings.maxBufferedBytesPerConnection) {
      // A dropped frame would break the protocol (a lost ack or a gap): end the connection instead.
      this.events.slowConsumer(this);
      this.closeWith(new TributaryError('SLOW_CONSUMER', `send buffer passed ${this.settings.maxBufferedBytesPerConnection} bytes`));
      return;
    }
    const refused = this.refusedWhileQueued;
    this.refusedWhileQueued = false;
    if (buffered >= this.settings.sendHighWaterBytes) {
      if (this.pausedSinceMs === 0) {
        this.pausedSinceMs = Date.now();
        this.events.paused(this);
      }
    } else if (this.pausedSinceMs !== 0) {
      // This write took uWS's backlog with it (uWS writes what it holds before a new frame): there may be no
      // writable event, so no drain, left to resume the subscriptions.
      this.onDrain();
    } else if (refused && this.subs) {
      for (const s of this.subs.values()) s.resume();
    }
  }

  /**
   * The sweep's check of a paused connection. uWS writes its backlog on writable events; under load one can
   * be missed, leaving a backlog of 130–150 KiB unwritten for minutes while the client reads an empty socket
   * (test/reliability/slow-consumers.test.ts caught it). A backlog that has not moved since the last sweep
   * gets a ping, whose write writes the backlog first and has uWS wait for writability again; one under the
   * high-water mark resumes the subscriptions as a drain would.
   */
  nudgeIfStalled(): void {
    if (this.pausedSinceMs === 0 || this.closed || !this.ws) return;
    const buffered = this.ws.getBufferedAmount();
    if (buffered < this.settings.sendHighWaterBytes) {
      this.onDrain();
      return;
    }
    if (buffered === this.bufferedAtSweep) this.ws.ping();
    this.bufferedAtSweep = buffered;
  }

  /** uWS drain: resume subscriptions once under the high-water mark. */
  onDrain(): void {
    if (this.closed || !this.ws || this.pausedSinceMs === 0) return;
    if (this.ws.getBufferedAmount() >= this.settings.sendHighWaterBytes) return;
    this.pausedSinceMs = 0;
    this.bufferedAtSweep = -1;
    this.events.resumed(this);
    if (this.subs) for (const s of this.subs.values()) s.resume();
  }
}
