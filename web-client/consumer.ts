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
 */
import { decodeBatches, decodeValue, TributaryError, errorFromWire, type ErrorFrame, type Header, type RecordsFrame, type ServerFrame, type StartPosition } from '../protocol/index.ts';
import type { Connection } from './connection.ts';
import { ClientError } from './errors.ts';
import type { OutboxStore, Positions } from './outbox.ts';

export interface SubscribeOptions {
  /** Where to start when there is no position yet: default 'latest'. A number is an offset. */
  from?: 'earliest' | 'latest' | number | { timestamp: number };
  /** Consumer group (served by the consumer-groups capability); offsets are committed after the handler resolves. */
  group?: string;
  partitions?: number[];
  /** Keep the position under this name in the outbox's storage, to continue there next time. */
  persist?: string;
  onOutOfRange?: 'earliest' | 'latest' | 'error';
  /** Bytes of batches the hub may send ahead of the handler (default 1 MiB). */
  creditBytes?: number;
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
}

export type RecordHandler = (record: ConsumedRecord) => void | Promise<void>;

export interface SubscriptionHandle {
  /** Next offset to deliver per partition (the handler finished everything below). */
  positions(): Positions;
  close(): void;
}

const DEFAULT_CREDIT_BYTES = 1024 * 1024;

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
  private processing = false;
  /** False between sending subscribe and handling its ok: frames wait until the start offsets are known. */
  private started = false;
  private closed = false;
  private saving = false;
  private saveAgain = false;
  private readonly start: StartPosition;
  private readonly loaded: Promise<void>;
  private readonly unlisten: () => void;

  constructor(
    private readonly conn: Connection,
    private readonly store: OutboxStore | undefined,
    readonly topic: string,
    private readonly opts: SubscribeOptions,
    private readonly handler: RecordHandler,
    private readonly onError: (err: Error) => void,
    private readonly onClose: (s: Subscription) => void,
  ) {
    this.start = startPosition(opts.from);
    this.loaded = this.loadPersisted();
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
    return Object.fromEntries([...this.pos].map(([p, o]) => [String(p), o]));
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
    if (this.opts.group) frame.group = this.opts.group;
    if (this.opts.onOutOfRange) frame.onOutOfRange = this.opts.onOutOfRange;
    if (this.pos.size) frame.positions = this.positions();
    // Frames of the previous session are void from here: the hub re-sends from the positions.
    this.queue = [];
    this.started = false;
    try {
      const ok = await this.conn.request(frame, undefined, (id) => (this.subId = id));
      const sub = (ok as { sub?: unknown }).sub;
      if (typeof sub === 'number') this.subId = sub;
      this.learnStarts(ok as Record<string, unknown>);
      this.started = true;
      // Records can arrive in the same read as the ok, before this line: deliver them now.
      if (this.queue.length && !this.processing) void this.process();
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
    } else if (f.t === 'error') {
      this.onError(errorFromWire(f as ErrorFrame));
    }
  }

  matches(sub: number): boolean {
    return sub === this.subId;
  }

  private async process(): Promise<void> {
    this.processing = true;
    try {
      while (this.queue.length && this.started && !this.closed) {
        const f = this.queue.shift()!;
        if (f.sub !== this.subId) continue;
        const from = this.pos.get(f.p) ?? 0;
        const records = decodeBatches(f.b, from);
        let committed = -1;
        for (const r of records) {
          if (this.closed) return;
          if (r.offset < (this.pos.get(f.p) ?? 0)) continue;
          let value: unknown;
          try {
            value = decodeValue(r.value, r.encoding);
          } catch {
            value = r.value; // not what its encoding says: hand over the bytes
          }
          try {
            await this.handler({ topic: this.topic, partition: f.p, offset: r.offset, timestamp: r.timestamp, key: r.key, value, headers: r.headers });
          } catch (err) {
            // Skipping would lose the record and retrying could loop forever: stop, and say why.
            this.onError(new ClientError('CLOSED', `subscription to ${this.topic} stopped: the handler threw at partition ${f.p} offset ${r.offset}: ${err instanceof Error ? err.message : String(err)}`, { cause: err }));
            this.close();
            return;
          }
          this.pos.set(f.p, r.offset + 1);
          committed = r.offset + 1;
        }
        if (f.sub === this.subId) this.conn.post({ t: 'credit', sub: f.sub, bytes: f.b.length });
        if (committed >= 0) {
          if (this.opts.group) this.commit(f.p, committed);
          if (this.opts.persist) void this.save();
        }
      }
    } finally {
      this.processing = false;
    }
  }

  private commit(partition: number, offset: number): void {
    this.conn.request({ t: 'commit', group: this.opts.group, topic: this.topic, offsets: [[partition, offset]] }).catch((err) => {
      if (!(err instanceof ClientError)) this.onError(err as Error);
    });
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

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.unlisten();
    if (this.subId >= 0 && this.conn.isOpen) this.conn.request({ t: 'unsubscribe', sub: this.subId }).catch(() => undefined);
    this.queue = [];
    this.onClose(this);
  }
}
