/**
 * The IndexedDB outbox's direct path (OutboxStore.sendDirect / sendManyDirect):
 * each event is validated and written at the call straight into the columns
 * of the chunk record it will be stored as (outbox-idb-chunk.ts), with no
 * entry, record or body object per event and one promise per group. A group
 * (up to DIRECT_GROUP_CHUNKS chunks) is one readwrite transaction, issued at
 * the end of the tick or when it is full, or before any other append of this
 * store (transactions run in the order they are created, so events keep call
 * order); the transaction reads the counters, numbers the chunks from them and
 * puts them, as `append` does. The chunk records are the ones `encodeChunk`
 * makes of the same events (values kept, no bodies), so the drain and older
 * tabs read them as before.
 *
 * Room is checked at the call against the store's estimate (the counters as
 * its last append read them, plus the groups not yet written); the
 * transaction checks again against the database, and a group that no longer
 * fits (another tab filled the outbox meanwhile) fails with OUTBOX_FULL
 * rather than waiting for room.
 */
import { ENCODING_CODE, LIMITS, assertTopicName, jsonText, recordLimitFault, TributaryError, type Header } from '../protocol/index.ts';
import { ClientError } from './errors.ts';
import { boundBytes, checkFitsFrame, checkedValue, eventKey, eventPartition, eventTimestamp, headerPairs, isJsonText, valueTooLarge, type SendEvent } from './event-input.ts';
import type { ColumnChunk } from './outbox-idb-chunk.ts';
import { CHUNK_MAX_EVENTS } from './outbox-idb-schema.ts';
import type { OutboxBounds } from './outbox.ts';

/** Chunks per group (one transaction): a burst of 20,000 sends is two transactions. */
const DIRECT_GROUP_CHUNKS = 8;

const textEncoder = new TextEncoder();

/** A position in a ChunkColumns, to put it back to (an invalid event of a sendMany). */
interface ColumnsMark {
  n: number;
  vpos: number;
  keys: number;
  topics: number;
  subs: number;
  extra: number;
}

/** One chunk's columns, written event by event; they grow (doubling) up to CHUNK_MAX_EVENTS. */
export class ChunkColumns {
  n = 0;
  private cap: number;
  ts: Float64Array;
  bytes: Uint32Array;
  topicOf: Uint16Array;
  subOf: Uint16Array;
  keyLen: Int32Array;
  valLen: Int32Array;
  enc: Uint8Array;
  readonly topics: string[] = [];
  readonly subs: string[] = [];
  keys = '';
  vals: Uint8Array;
  vpos = 0;
  extra: NonNullable<ColumnChunk['extra']> = [];
  /** Bound bytes of the events (what the outbox's byte bound counts). */
  total = 0;

  /** `events`: the room to start with (an awaited send() needs one, a burst thousands); `valueBytes`: per event, a guess. */
  constructor(events: number, valueBytes: number) {
    const cap = Math.max(1, Math.min(CHUNK_MAX_EVENTS, events));
    this.cap = cap;
    this.ts = new Float64Array(cap);
    this.bytes = new Uint32Array(cap);
    this.topicOf = new Uint16Array(cap);
    this.subOf = new Uint16Array(cap);
    this.keyLen = new Int32Array(cap);
    this.valLen = new Int32Array(cap);
    this.enc = new Uint8Array(cap);
    this.vals = new Uint8Array(Math.max(256, cap * valueBytes));
  }

  get full(): boolean {
    return this.n >= CHUNK_MAX_EVENTS;
  }

  private grow(): void {
    const cap = Math.min(CHUNK_MAX_EVENTS, this.cap * 2);
    const more = <T extends Float64Array | Uint32Array | Uint16Array | Int32Array | Uint8Array>(a: T, b: T): T => (b.set(a), b);
    this.ts = more(this.ts, new Float64Array(cap));
    this.bytes = more(this.bytes, new Uint32Array(cap));
    this.topicOf = more(this.topicOf, new Uint16Array(cap));
    this.subOf = more(this.subOf, new Uint16Array(cap));
    this.keyLen = more(this.keyLen, new Int32Array(cap));
    this.valLen = more(this.valLen, new Int32Array(cap));
    this.enc = more(this.enc, new Uint8Array(cap));
    this.cap = cap;
  }

  mark(): ColumnsMark {
    return { n: this.n, vpos: this.vpos, keys: this.keys.length, topics: this.topics.length, subs: this.subs.length, extra: this.extra.length };
  }

  reset(m: ColumnsMark): void {
    for (let i = m.n; i < this.n; i++) this.total -= this.bytes[i];
    this.n = m.n;
    this.vpos = m.vpos;
    if (this.keys.length !== m.keys) this.keys = this.keys.slice(0, m.keys);
    this.topics.length = m.topics;
    this.subs.length = m.subs;
    this.extra.length = m.extra;
  }

  private room(bytes: number): void {
    if (this.vpos + bytes <= this.vals.length) return;
    const grown = new Uint8Array(Math.max(this.vals.length * 2, this.vpos + bytes));
    grown.set(this.vals.subarray(0, this.vpos));
    this.vals = grown;
  }

  /**
   * Validates one event as toOutboxRecord does (same checks, same order) and writes it; returns its
   * bound bytes. Throws what toOutboxRecord throws, and OUTBOX_FULL for an event larger than the bound;
   * the columns are unchanged then.
   */
  write(topic: string, sub: string, event: SendEvent, now: number, maxBytes: number): number {
    const key = eventKey(event);
    const headers = headerPairs(event.headers);
    const i = this.n;
    let vlen: number;
    let enc: number;
    if (isJsonText(event)) {
      const text = jsonText(event.value);
      if (text.length > LIMITS.maxValueBytes) valueTooLarge(text.length);
      const fault = recordLimitFault(key, null, headers);
      if (fault) throw new TributaryError(fault.code, fault.message);
      this.room(3 * text.length);
      vlen = textEncoder.encodeInto(text, this.vals.subarray(this.vpos, this.vpos + 3 * text.length)).written;
      if (vlen > LIMITS.maxValueBytes) valueTooLarge(vlen);
      enc = ENCODING_CODE.json;
    } else {
      const encoded = checkedValue(event, key, headers);
      enc = ENCODING_CODE[encoded.encoding];
      if (encoded.value === null) vlen = -1;
      else {
        vlen = encoded.value.length;
        this.room(vlen);
        this.vals.set(encoded.value, this.vpos);
      }
    }
    const bytes = boundBytes(key, vlen < 0 ? 0 : vlen, headers);
    const ts = eventTimestamp(event, now);
    const p = eventPartition(event);
    checkFitsFrame(bytes);
    if (bytes > maxBytes) throw new ClientError('OUTBOX_FULL', `event of ${bytes} bytes exceeds the outbox's maxOutboxBytes (${maxBytes})`);
    // Valid: from here on the event is in.
    if (i === this.cap) this.grow();
    if (vlen > 0) this.vpos += vlen;
    this.valLen[i] = vlen;
    this.enc[i] = enc;
    this.ts[i] = ts;
    this.bytes[i] = bytes;
    this.topicOf[i] = indexIn(this.topics, topic);
    this.subOf[i] = indexIn(this.subs, sub);
    if (typeof key === 'string') {
      this.keyLen[i] = key.length;
      this.keys += key;
    } else this.keyLen[i] = key === null ? -1 : -2;
    if (key instanceof Uint8Array || headers.length || p !== undefined) {
      const x: { k?: Uint8Array; h?: Header[]; p?: number } = {};
      if (key instanceof Uint8Array) x.k = key;
      if (headers.length) x.h = headers.map((h) => [h[0], h[1]]);
      if (p !== undefined) x.p = p;
      this.extra.push([i, x]);
    }
    this.n = i + 1;
    this.total += bytes;
    return bytes;
  }

  /** The chunk record, its ids from `first` on: columns copied to their length (a view would clone its whole buffer). */
  finish(first: number): ColumnChunk {
    const n = this.n;
    const chunk: ColumnChunk = {
      first,
      n,
      ts: this.ts.slice(0, n),
      bytes: this.bytes.slice(0, n),
      topics: this.topics.slice(),
      subs: this.subs.slice(),
      keys: this.keys,
      keyLen: this.keyLen.slice(0, n),
      valLen: this.valLen.slice(0, n),
      enc: this.enc.slice(0, n),
    };
    // In encodeChunk's order (the drain reads one shape of chunk record either way).
    chunk.vals = this.vals.slice(0, this.vpos);
    if (this.topics.length > 1) chunk.topicOf = this.topicOf.slice(0, n);
    if (this.subs.length > 1) chunk.subOf = this.subOf.slice(0, n);
    if (this.extra.length) chunk.extra = this.extra.slice();
    return chunk;
  }
}

function indexIn(list: string[], value: string): number {
  for (let i = list.length - 1; i >= 0; i--) if (list[i] === value) return i;
  list.push(value);
  return list.length - 1;
}

/** Events gathered for one transaction. */
export interface DirectGroup {
  chunks: ChunkColumns[];
  count: number;
  bytes: number;
  bounds: OutboxBounds;
  done: Promise<void>;
  settle(err?: unknown): void;
}

/** Counters as the store last read them (events, bytes) and what groups not yet written add. */
export interface RoomEstimate {
  events: number;
  bytes: number;
}

/**
 * The groups of the direct path. `write` runs a group's transaction (the store's); it is called in
 * the order groups close, and before any other append of the store (`flush`).
 */
export class DirectGroups {
  private open?: DirectGroup;
  /** Events and bytes of groups not written yet. */
  readonly pending: RoomEstimate = { events: 0, bytes: 0 };
  private lastTopic = '';
  /** A new chunk starts with room for as many events as the last group had, and their value bytes on average. */
  private eventsHint = 16;
  private valueHint = 128;

  constructor(
    /** The counters as the store last read them; undefined until it has. */
    private readonly known: () => RoomEstimate | undefined,
    private readonly write: (g: DirectGroup) => Promise<void>,
  ) {}

  private fits(events: number, bytes: number, bounds: OutboxBounds): boolean {
    const k = this.known();
    return k !== undefined && k.events + this.pending.events + events <= bounds.maxEvents && k.bytes + this.pending.bytes + bytes <= bounds.maxBytes;
  }

  private checkTopic(topic: string): void {
    if (topic !== this.lastTopic) {
      assertTopicName(topic);
      this.lastTopic = topic;
    }
  }

  /** send(): undefined when the event may not fit (the caller takes the usual path). */
  sendOne(topic: string, sub: string, event: SendEvent, now: number, bounds: OutboxBounds): Promise<void> | undefined {
    if (!this.fits(1, 0, bounds)) return undefined;
    this.checkTopic(topic);
    const g = this.group(bounds);
    const c = this.columns(g);
    const m = c.mark();
    const bytes = c.write(topic, sub, event, now, bounds.maxBytes);
    if (!this.fits(1, bytes, bounds)) {
      c.reset(m);
      return undefined;
    }
    this.add(g, 1, bytes);
    return g.done;
  }

  /** sendMany(): all validated (an invalid one throws, none in); all in, or none (undefined) when they may not fit. */
  sendMany(topic: string, sub: string, events: ArrayLike<SendEvent>, now: number, bounds: OutboxBounds): { stored: number; done: Promise<void> } | undefined {
    if (events.length === 0 || !this.fits(events.length, 0, bounds)) return undefined;
    this.checkTopic(topic);
    const g = this.group(bounds);
    const startChunks = g.chunks.length;
    const last = g.chunks[startChunks - 1];
    const at = last?.mark();
    let bytes = 0;
    const undo = () => {
      g.chunks.length = startChunks;
      if (last) last.reset(at!);
    };
    try {
      for (let i = 0; i < events.length; i++) bytes += this.columns(g).write(topic, sub, events[i], now, bounds.maxBytes);
    } catch (err) {
      undo();
      throw err;
    }
    if (!this.fits(events.length, bytes, bounds)) {
      undo();
      return undefined;
    }
    this.add(g, events.length, bytes);
    return { stored: events.length, done: g.done };
  }

  /** Issues the open group's transaction now (before another append of the store, and at close). */
  flush(): void {
    const g = this.open;
    if (!g) return;
    this.open = undefined;
    this.eventsHint = g.count;
    const last = g.chunks[g.chunks.length - 1];
    if (last?.n) this.valueHint = Math.ceil(last.vpos / last.n) + 16;
    if (g.count === 0) {
      g.settle();
      return;
    }
    this.write(g).then(
      () => this.settled(g),
      (err: unknown) => this.settled(g, err),
    );
  }

  private settled(g: DirectGroup, err?: unknown): void {
    this.pending.events -= g.count;
    this.pending.bytes -= g.bytes;
    g.settle(err);
  }

  private add(g: DirectGroup, events: number, bytes: number): void {
    g.count += events;
    g.bytes += bytes;
    this.pending.events += events;
    this.pending.bytes += bytes;
    if (g.chunks.length >= DIRECT_GROUP_CHUNKS && g.chunks[g.chunks.length - 1].full) this.flush();
  }

  /** The chunk the next event goes into (a new one when the last is full). */
  private columns(g: DirectGroup): ChunkColumns {
    const last = g.chunks[g.chunks.length - 1];
    if (last && !last.full) return last;
    if (last) this.valueHint = Math.ceil(last.vpos / last.n) + 16;
    const c = new ChunkColumns(this.eventsHint, this.valueHint);
    g.chunks.push(c);
    return c;
  }

  private group(bounds: OutboxBounds): DirectGroup {
    if (this.open) {
      this.open.bounds = bounds;
      return this.open;
    }
    let settle!: (err?: unknown) => void;
    const done = new Promise<void>((resolve, reject) => (settle = (err) => (err === undefined ? resolve() : reject(err))));
    done.catch(() => undefined); // its callers get the error
    const g: DirectGroup = { chunks: [], count: 0, bytes: 0, bounds, done, settle };
    this.open = g;
    queueMicrotask(() => {
      if (this.open === g) this.flush();
    });
    return g;
  }
}
