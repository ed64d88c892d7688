/**
 * Subscriptions: replay from a position, then follow live, across
 * reconnects with no gap and no duplicate.
 *
 * The client keeps, per partition, the next offset to deliver (the offset
 * after the last record the handler finished). On every new session it
 * subscribes again with those `positions`; records below a position (the
 * hub sends whole stored batches, which may start earlier) are skipped, and
 * frames of an older session are dropped, since the new one re-sends them
 * from the position. Flow control: the hub may send `creditBytes` of batches
 * ahead; each frame the handler has finished is credited back.
 *
 * With `group`, the subscription is one member of a consumer group
 * (group-member.ts): the hub assigns its partitions and where each starts;
 * assignments are handled in the processing loop ahead of queued records, so
 * revoked partitions stop at the next record and onAssign runs before the
 * first record of a new partition.
 */
import {
  crc32c as portableCrc32c,
  readIndexedRecords,
  readLazyRecords,
  readRecords,
  type BatchValues,
  TributaryError,
  errorFromWire,
  type AssignmentFrame,
  type ErrorFrame,
  type RecordsFrame,
  type ServerFrame,
  type Crc32c,
  type Header,
  type RecordKey,
  type StartPosition,
  type ValueEncoding,
} from '../protocol/index.ts';
import type { Connection } from './connection.ts';
import { ClientError } from './errors.ts';
import { GroupMember, type AssignmentChange } from './group-member.ts';
import type { OutboxStore, Positions } from './outbox.ts';
import { batchCrc32c } from './runtime.ts';
import type { IndexedRecordsFrame } from './worker-socket.ts';
import { RecordsView } from './records-view.ts';

export interface SubscribeOptions {
  /** Where to start when there is no position yet (with `group`: where the group has no committed offset): default 'latest'. A number is an offset. */
  from?: 'earliest' | 'latest' | number | { timestamp: number };
  /** Consumer group: the hub assigns this member its partitions; see autoCommit, onAssign, onRevoke. */
  group?: string;
  /** Group members: commit each partition's position after the handler resolves (coalesced). Default true. */
  autoCommit?: boolean;
  /** Group members: new partitions, called before any of their records is handled. */
  onAssign?: (partitions: number[], generation: number) => void | Promise<void>;
  /** Group members: partitions taken away (or lost), called after their handlers finished and before the hub is told. */
  onRevoke?: (partitions: number[]) => void | Promise<void>;
  partitions?: number[];
  /** Keep the position under this name in the outbox's storage, to continue there next time. */
  persist?: string;
  onOutOfRange?: 'earliest' | 'latest' | 'error';
  /** Bytes of batches the hub may send ahead of the handler (default 4 MiB). */
  creditBytes?: number;
  /**
   * Batch handler for fast consumers, instead of the per-record handler: the
   * records of one `records` frame (one partition, in offset order, values
   * decoded as for the handler), one await per frame rather than per record.
   * The position (and a group's commit) moves past the whole array once it
   * resolves; if it throws, the subscription stops as with the handler and
   * the whole array is delivered again next time. A revocation takes effect
   * between arrays.
   */
  onBatch?: BatchHandler;
  /**
   * Hand records over with their values undecoded until read: `value` is a
   * getter that decodes the values of the record's stored batch on first
   * read (one JSON.parse for all its JSON values), and `valueBytes` /
   * `valueEncoding` give the stored bytes without decoding, for consumers
   * that pass values on as they are. The records are then class instances:
   * `{...record}` does not copy `value` (use `record.toJSON()`). Default false.
   */
  lazyValues?: boolean;
  /**
   * Frame handler with no object per record, instead of the other two: the
   * records of one `records` frame as a RecordsView (records-view.ts:
   * columns over the frame's bytes, keys and values decoded when read). The
   * view is valid during the call only (the next frame reuses it): copy what
   * you keep (view.keep()). Positions, commits, revocation and errors as for
   * onBatch.
   */
  onView?: (view: RecordsView) => void | Promise<void>;
}

/** A record as the handler receives it. */
export interface ConsumedRecord {
  topic: string;
  partition: number;
  offset: number;
  timestamp: number;
  key: string | Uint8Array | null;
  /** JSON and CBOR values decoded; bytes as Uint8Array; null for a tombstone. */
  value: unknown;
  headers: Header[];
  /** With `lazyValues`: the value's stored bytes (a view into the received frame: copy to keep), null for a tombstone. */
  readonly valueBytes?: Uint8Array | null;
  /** With `lazyValues`: how valueBytes are encoded. */
  readonly valueEncoding?: ValueEncoding;
}

/**
 * A record of a `lazyValues` subscription: its value stays in the frame's
 * bytes until read. Private fields (#) keep the batch out of
 * JSON.stringify, spread and structuredClone.
 */
export class LazyRecord implements ConsumedRecord {
  readonly #values: BatchValues;
  readonly #index: number;
  constructor(
    readonly topic: string,
    readonly partition: number,
    readonly offset: number,
    readonly timestamp: number,
    readonly key: RecordKey,
    readonly headers: Header[],
    values: BatchValues,
    index: number,
  ) {
    this.#values = values;
    this.#index = index;
  }

  get value(): unknown {
    return this.#values.value(this.#index);
  }

  get valueBytes(): Uint8Array | null {
    return this.#values.bytes(this.#index);
  }

  get valueEncoding(): ValueEncoding {
    return this.#values.encoding(this.#index);
  }

  /** The plain record (value decoded), for JSON.stringify and copies. */
  toJSON(): ConsumedRecord {
    return { topic: this.topic, partition: this.partition, offset: this.offset, timestamp: this.timestamp, key: this.key, value: this.value, headers: this.headers };
  }
}

export type RecordHandler = (record: ConsumedRecord) => void | Promise<void>;
export type BatchHandler = (records: ConsumedRecord[]) => void | Promise<void>;

export interface SubscriptionHandle {
  /** Next offset to deliver per partition (the handler finished everything below); a group member's held partitions only. */
  positions(): Positions;
  /** Partitions this subscription consumes now (a group member: its current assignment). */
  assignment(): number[];
  /** Group members: commit positions() now, or the offsets given (partition → next offset). Rejects with FENCED when no longer an owner. */
  commit(offsets?: Record<number, number>): Promise<void>;
  /** Stop (a group member leaves its group at once, after committing what it finished). */
  close(): void;
}

/**
 * Why 4 MiB: the window must cover the bytes that arrive during one credit
 * round trip (hub read, send, the browser's network process, decode, the
 * credit frame back). Replaying 100-byte events in Chromium with 1 MiB, the
 * page sat idle 55-65% waiting for frames; 4 MiB was 1.2-1.5x faster in the
 * same run (bench/browser-replay.ts, BROWSER_REPLAY_CREDIT). It is also the
 * most a subscription's frames can hold of the client's memory.
 */
const DEFAULT_CREDIT_BYTES = 4 * 1024 * 1024;
/** Handled bytes are credited back in parts of this fraction of the window (returnCredit). */
const CREDIT_RETURN_PARTS = 4;

function startPosition(from: SubscribeOptions['from']): StartPosition {
  if (from === undefined || from === 'latest') return 'latest';
  if (from === 'earliest') return 'earliest';
  if (typeof from === 'number') {
    if (!Number.isSafeInteger(from) || from < 0) throw new TributaryError('BAD_REQUEST', 'from must be a non-negative offset');
    return { offset: from };
  }
  if (typeof from === 'object' && from !== null && Number.isSafeInteger(from.timestamp)) return { timestamp: from.timestamp };
  throw new TributaryError('BAD_REQUEST', "from must be 'earliest', 'latest', an offset or { timestamp }");
}

export class Subscription implements SubscriptionHandle {
  private readonly pos = new Map<number, number>();
  /** Subscription id of the current session (the subscribe request's id). */
  private subId = -1;
  private queue: RecordsFrame[] = [];
  /** Bytes of handled frames of session `creditSub` not yet credited back (returnCredit). */
  private unreturned = 0;
  private creditSub = -1;
  private creditTimer: ReturnType<typeof setTimeout> | undefined;
  private processing = false;
  /** False between sending subscribe and handling its ok: frames wait until the start offsets are known. */
  private started = false;
  private closed = false;
  private saving = false;
  private saveAgain = false;
  private readonly start: StartPosition;
  private readonly loaded: Promise<void>;
  private readonly unlisten: () => void;
  /** Group membership, when `group` is set. */
  private readonly member?: GroupMember;
  /** Assignments waiting to be handled, ahead of queued records. */
  private control: AssignmentChange[] = [];
  /** Assignments that arrived before the subscribe's ok was handled (same read): read after it. */
  private early: AssignmentFrame[] = [];
  /** Bumped when partitions are revoked, so the loop re-checks what it holds (one compare per record). */
  private epoch = 0;
  /** Checks each batch's CRC: native in Node once loaded, portable until then and in browsers. */
  private crc: Crc32c = portableCrc32c;
  /** Builds the handler's records for the partition being read (set before each frame is decoded). */
  private framePartition = 0;
  /** onView's view, reused frame after frame. */
  private view: RecordsView | null = null;
  private readonly makeRecord = (offset: number, timestamp: number, key: RecordKey, value: unknown, headers: Header[]): ConsumedRecord => ({
    topic: this.topic,
    partition: this.framePartition,
    offset,
    timestamp,
    key,
    value,
    headers,
  });
  private readonly makeLazyRecord = (offset: number, timestamp: number, key: RecordKey, headers: Header[], values: BatchValues, index: number): ConsumedRecord =>
    new LazyRecord(this.topic, this.framePartition, offset, timestamp, key, headers, values, index);

  constructor(
    private readonly conn: Connection,
    private readonly store: OutboxStore | undefined,
    readonly topic: string,
    private readonly opts: SubscribeOptions,
    private readonly handler: RecordHandler | undefined,
    private readonly onError: (err: Error) => void,
    private readonly onClose: (s: Subscription) => void,
  ) {
    this.start = startPosition(opts.from);
    if (+!!handler + +!!opts.onBatch + +!!opts.onView !== 1) throw new TributaryError('BAD_REQUEST', 'subscribe needs one of a record handler, onBatch or onView');
    if (opts.group) this.member = new GroupMember(conn, opts.group, topic, opts.autoCommit !== false, onError);
    this.loaded = this.loadPersisted();
    void batchCrc32c().then(
      (crc) => (this.crc = crc),
      () => undefined,
    );
    this.unlisten = conn.on('open', () => void this.subscribe());
    if (conn.isOpen) void this.subscribe();
  }

  private async loadPersisted(): Promise<void> {
    if (!this.opts.persist || !this.store) return;
    await this.store.open();
    const saved = await this.store.loadPositions(`${this.topic}/${this.opts.persist}`);
    if (saved) for (const [p, o] of Object.entries(saved)) if (!this.pos.has(Number(p))) this.pos.set(Number(p), o);
  }

  positions(): Positions {
    const m = this.member;
    return Object.fromEntries([...this.pos].filter(([p]) => !m || m.held.has(p)).map(([p, o]) => [String(p), o]));
  }

  assignment(): number[] {
    return [...(this.member ? this.member.held : this.pos.keys())].sort((a, b) => a - b);
  }

  async commit(offsets?: Record<number, number>): Promise<void> {
    const m = this.member;
    if (!m) throw new TributaryError('BAD_REQUEST', 'commit() is for group subscriptions');
    const list: Array<[number, number]> = offsets ? Object.entries(offsets).map(([p, o]) => [Number(p), o]) : [...m.held].filter((p) => this.pos.has(p)).map((p) => [p, this.pos.get(p)!]);
    if (list.length) await m.commit(list);
  }

  private async subscribe(): Promise<void> {
    try {
      await this.loaded;
    } catch (err) {
      this.onError(err as Error);
    }
    if (this.closed || !this.conn.isOpen) return;
    const frame: Record<string, unknown> & { t: string } = { t: 'subscribe', topic: this.topic, from: this.start, credit: this.opts.creditBytes ?? DEFAULT_CREDIT_BYTES };
    if (this.opts.partitions) frame.partitions = this.opts.partitions;
    if (this.member) {
      frame.group = this.member.group;
      if (this.member.id) frame.member = this.member.id;
    } else if (this.pos.size) frame.positions = this.positions();
    if (this.opts.onOutOfRange) frame.onOutOfRange = this.opts.onOutOfRange;
    // Frames of the previous session are void from here: the hub re-sends from the positions.
    this.queue = [];
    this.control = [];
    this.early = [];
    this.started = false;
    try {
      const ok = await this.conn.request(frame, undefined, (id) => (this.subId = id));
      const subId = (ok as { sub?: unknown }).sub;
      if (typeof subId === 'number') this.subId = subId;
      if (this.member && !this.member.joined(ok as Record<string, unknown>, this.subId, () => this.rejoin())) this.lost([...this.member.held]);
      this.learnStarts(ok as Record<string, unknown>);
      const early = this.early;
      this.early = [];
      for (const a of early) if (a.sub === this.subId) this.assigned(a);
      this.started = true;
      // Records can arrive in the same read as the ok, before this line: deliver them now.
      if ((this.queue.length || this.control.length) && !this.processing) void this.process();
    } catch (err) {
      if (err instanceof ClientError && err.code === 'DISCONNECTED') return; // the next session subscribes again
      this.onError(err as Error);
    }
  }

  /** The hub may say where each partition starts ({p, offset} entries): remember them so a resume after 'latest' has no gap. */
  private learnStarts(ok: Record<string, unknown>): void {
    const list = ok.partitions;
    if (!Array.isArray(list)) return;
    for (const s of list) {
      const p = (s as { p?: unknown }).p;
      const o = (s as { offset?: unknown }).offset;
      if (typeof p === 'number' && typeof o === 'number' && !this.pos.has(p)) this.pos.set(p, o);
    }
  }

  /** A frame for this subscription (routed by the client). */
  push(f: ServerFrame): void {
    if (this.closed) return;
    if (f.t === 'records') {
      if (f.sub !== this.subId) return;
      this.queue.push(f);
      if (this.started && !this.processing) void this.process();
    } else if (f.t === 'assignment') {
      if (f.sub !== this.subId || !this.member) return;
      if (this.started) this.assigned(f);
      else this.early.push(f);
    } else if (f.t === 'error') {
      const err = errorFromWire(f as ErrorFrame);
      // The hub ended this member (session expired, revocation not confirmed): rejoin as a new one.
      if (this.member && err.code === 'FENCED') return this.rejoin();
      this.onError(err);
    }
  }

  /** An assignment arrived: revoked partitions stop now (queued records dropped and credited); the rest waits for the loop. */
  private assigned(f: AssignmentFrame): void {
    const m = this.member!;
    const change = m.take(f);
    for (const p of change.added) {
      const given = f.positions[p];
      if (typeof given === 'number') this.pos.set(p, given);
    }
    // Kept across a reconnect: the hub restarts them at the commit; what was handled since is skipped and committed.
    for (const p of f.partitions) {
      const at = this.pos.get(p);
      if (!change.added.includes(p) && at !== undefined && at > (f.positions[p] ?? at) && m.autoCommit) m.processed(p, at);
    }
    if (change.revoked.length) {
      this.epoch++;
      this.queue = this.queue.filter((q) => {
        if (m.held.has(q.p)) return true;
        if (q.sub === this.subId) this.conn.post({ t: 'credit', sub: q.sub, bytes: q.b.length });
        return false;
      });
    }
    this.control.push(change);
    if (this.started && !this.processing) void this.process();
  }

  /** Handled in the loop, so no handler of a revoked partition is running: commit, onRevoke, confirm, then onAssign. */
  private async applyAssignment(change: AssignmentChange): Promise<void> {
    const m = this.member!;
    const { frame, added, revoked } = change;
    if (frame.sub !== this.subId) return;
    if (revoked.length) {
      if (m.autoCommit) await m.flushQuietly();
      await this.hook(() => this.opts.onRevoke?.(revoked));
      // A slow onRevoke may outlive the membership (expelled, rejoined): leave the new one's positions alone.
      if (frame.sub !== this.subId) return;
      for (const p of revoked) if (!m.held.has(p)) this.pos.delete(p);
    }
    await m.confirm(frame.sub, frame.generation);
    if (added.length) await this.hook(() => this.opts.onAssign?.(added, frame.generation));
  }

  private async hook(call: () => void | Promise<void>): Promise<void> {
    try {
      await call();
    } catch (err) {
      this.onError(err instanceof Error ? err : new Error(String(err)));
    }
  }

  /** The membership ended: what was held is lost (others will redo what was not committed). */
  private lost(partitions: number[]): void {
    this.member?.held.clear();
    this.pos.clear();
    this.epoch++;
    if (partitions.length) void this.hook(() => this.opts.onRevoke?.(partitions));
  }

  /** Join again as a new member (the hub forgot this one). */
  private rejoin(): void {
    if (this.closed || !this.member) return;
    this.lost(this.member.lose());
    this.queue = [];
    this.control = [];
    this.subId = -1;
    if (this.conn.isOpen) void this.subscribe();
  }

  matches(subId: number): boolean {
    return subId === this.subId;
  }

  private async process(): Promise<void> {
    this.processing = true;
    try {
      while ((this.queue.length || this.control.length) && this.started && !this.closed) {
        if (this.control.length) {
          await this.applyAssignment(this.control.shift()!);
          continue;
        }
        const f = this.queue.shift()!;
        if (f.sub !== this.subId) continue;
        const member = this.member;
        if (member && !member.held.has(f.p)) {
          this.conn.post({ t: 'credit', sub: f.sub, bytes: f.b.length });
          continue;
        }
        // memberId: the membership this frame's records are handled under (a revocation meanwhile still commits them).
        const [epoch, memberId] = [this.epoch, member?.id];
        const from = this.pos.get(f.p) ?? 0;
        this.framePartition = f.p;
        // A frame from WorkerWebSocket's worker is checked and indexed there: the records are made without walking its bytes.
        const index = (f as IndexedRecordsFrame).index;
        let committed = -1;
        if (this.opts.onView) {
          // One view per frame, no record objects: delivered, credited and committed as onBatch's arrays are.
          const view = (this.view ??= new RecordsView(this.topic)).read(f.b, f.p, from, this.crc);
          if (view.count) {
            const last = view.offset(view.count - 1);
            if (!(await this.deliverBatch(view, f.p))) return;
            this.pos.set(f.p, last + 1);
            committed = last + 1;
          }
        } else {
          const records = this.opts.lazyValues
            ? readLazyRecords(f.b, from, this.makeLazyRecord, this.crc)
            : index
              ? readIndexedRecords(f.b, index, from, this.makeRecord)
              : readRecords(f.b, from, this.makeRecord, this.crc);
          if (this.opts.onBatch) {
            if (records.length) {
              const last = records[records.length - 1].offset;
              if (!(await this.deliverBatch(records, f.p))) return;
              this.pos.set(f.p, last + 1);
              committed = last + 1;
            }
          } else {
            const handler = this.handler!;
            for (let i = 0; i < records.length; i++) {
              const r = records[i];
              if (this.closed) return;
              if (this.epoch !== epoch && member && !member.held.has(f.p)) break; // revoked: stop at this record
              if (r.offset < (this.pos.get(f.p) ?? 0)) continue;
              // A handler that returns no promise runs without an await per record (a microtask each).
              let result: void | Promise<void>;
              try {
                result = handler(r);
              } catch (err) {
                this.handlerFailed(err, f.p, r.offset);
                return;
              }
              if (result !== undefined && typeof (result as { then?: unknown }).then === 'function') {
                try {
                  await result;
                } catch (err) {
                  this.handlerFailed(err, f.p, r.offset);
                  return;
                }
              }
              this.pos.set(f.p, r.offset + 1);
              committed = r.offset + 1;
            }
          }
        }
        if (f.sub === this.subId) this.returnCredit(f.sub, f.b.length);
        if (committed >= 0) {
          if (member) {
            // Revoked while its handler ran: still its own until the confirm (after this commit), else the next owner redoes it.
            if (member.autoCommit && (member.held.has(f.p) || member.id === memberId)) member.processed(f.p, committed);
          } else if (this.opts.persist) void this.save();
        }
      }
    } finally {
      this.processing = false;
    }
  }

  /**
   * Credits handled frames' bytes back a quarter of the window at a time,
   * or once the frames that arrived back to back are handled (a zero-delay
   * timer: each received frame is a task of its own, so "none queued" holds
   * after nearly every frame). The hub keeps at least three quarters of the
   * window meanwhile, so it waits for this only when the handler is a whole
   * window behind. Why not one credit frame per records frame: in Chromium
   * a WebSocket send (or a post to the socket worker) made while frames
   * stream in cost the page's main thread 1-3 ms, an idle one 0.02 ms;
   * replaying 200,000 events that was a send per 132 KB frame, 15% of the
   * main thread's samples (bench/browser-replay.ts); the hub paid for each
   * credit too (a reader in Node: 0.50-0.55 against 0.30 µs per event).
   */
  private returnCredit(sub: number, bytes: number): void {
    if (sub !== this.creditSub) {
      this.creditSub = sub;
      this.unreturned = 0;
    }
    this.unreturned += bytes;
    if (this.unreturned >= (this.opts.creditBytes ?? DEFAULT_CREDIT_BYTES) / CREDIT_RETURN_PARTS) this.flushCredit();
    else this.creditTimer ??= setTimeout(() => this.flushCredit(), 0);
  }

  private flushCredit(): void {
    if (this.creditTimer !== undefined) clearTimeout(this.creditTimer);
    this.creditTimer = undefined;
    if (this.unreturned > 0 && this.creditSub === this.subId && !this.closed) this.conn.post({ t: 'credit', sub: this.creditSub, bytes: this.unreturned });
    this.unreturned = 0;
  }

  /** Runs the batch handler; false (and the subscription stopped) when it threw. */
  private async deliverBatch(records: ConsumedRecord[] | RecordsView, p: number): Promise<boolean> {
    if (this.closed) return false;
    try {
      await (records instanceof RecordsView ? this.opts.onView!(records) : this.opts.onBatch!(records));
      return true;
    } catch (err) {
      this.handlerFailed(err, p, records instanceof RecordsView ? records.offset(0) : records[0].offset);
      return false;
    }
  }

  /** Skipping would lose the record and retrying could loop forever: stop, and say why. */
  private handlerFailed(err: unknown, p: number, offset: number): void {
    this.onError(
      new ClientError('CLOSED', `subscription to ${this.topic} stopped: the handler threw at partition ${p} offset ${offset}: ${err instanceof Error ? err.message : String(err)}`, { cause: err }),
    );
    void this.close();
  }

  /** Saves positions, coalescing: at most one write in flight, and one more with the latest state. */
  private async save(): Promise<void> {
    if (!this.store || !this.opts.persist) return;
    if (this.saving) {
      this.saveAgain = true;
      return;
    }
    this.saving = true;
    try {
      do {
        this.saveAgain = false;
        await this.store.savePositions(`${this.topic}/${this.opts.persist}`, this.positions());
      } while (this.saveAgain);
    } catch (err) {
      this.onError(err as Error);
    } finally {
      this.saving = false;
    }
  }

  /** Stops; resolves once the hub was told (a group member: after committing what it finished). */
  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.closed = true;
    this.flushCredit();
    this.unlisten();
    const subId = this.subId;
    const leave = async (): Promise<void> => {
      if (subId >= 0 && this.conn.isOpen) await this.conn.request({ t: 'unsubscribe', sub: subId }).catch(() => undefined);
    };
    const m = this.member;
    let done: Promise<void>;
    if (m) {
      m.stopHeartbeat();
      // Commit what the handler finished, then leave: the next owner starts there.
      done = m.autoCommit && this.conn.isOpen ? m.flushQuietly().then(leave) : leave();
    } else done = leave();
    this.queue = [];
    this.control = [];
    this.onClose(this);
    return done;
  }
}
