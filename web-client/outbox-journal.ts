/**
 * The file outbox's journal entries in binary form: appends, partition
 * assignments and removals, the entries a busy outbox writes all the time.
 * An appended event is written as its record body (protocol/record-body.ts),
 * the bytes its batches copy, plus the outbox's own fields; no per-event
 * CBOR object is built or parsed.
 *
 * Every entry, binary or CBOR (the rarer ones: snapshot, failures,
 * positions), is framed [u32 payload length][u32 CRC-32C of payload]
 * [payload], big-endian. A binary payload starts with its kind (1-3); a CBOR
 * entry is a map, whose first byte is 0xa0-0xbf, so the two never collide
 * and a journal an older client wrote (CBOR only) reads as before.
 *
 * Append (kind 1): count uvarint, then per event: id uvarint; p + 2 uvarint
 * (0: no partition field, an older client's event; 1: not assigned yet);
 * zig-zag seq; bytes uvarint; timestamp uvarint; topic (length uvarint, 0 =
 * the previous event's, then UTF-8); subject (length + 1 uvarint, 0 = the
 * previous event's); explicit partition + 1 uvarint (0: none); body length
 * uvarint and the body.
 * Assign (kind 2): count, then per event id, p, seq (uvarints).
 * Remove (kind 3): count, then ids as zig-zag deltas from the previous id.
 */
import { decodeRecordBody, readUvarint, unzigzag, uvarintSize, writeUvarint, zigzag, type Crc32c, type VarintRead, type WireRecord } from '../protocol/index.ts';
import { recordBody } from './event-input.ts';
import type { FailedEvent, OutboxEvent, Positions } from './outbox.ts';

export const ENTRY_HEADER_BYTES = 8;
const KIND_APPEND = 1;
const KIND_ASSIGN = 2;
const KIND_REMOVE = 3;

/** True for a payload in this file's binary form (a CBOR entry starts with a map byte). */
export function isBinaryEntry(payload: Uint8Array): boolean {
  return payload.length > 0 && payload[0] >= KIND_APPEND && payload[0] <= KIND_REMOVE;
}

const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder('utf-8', { fatal: true });

/** A growing buffer that starts with room for the entry header. */
class EntryWriter {
  buf: Uint8Array;
  pos = ENTRY_HEADER_BYTES;

  constructor(sizeHint: number) {
    this.buf = new Uint8Array(Math.max(64, ENTRY_HEADER_BYTES + sizeHint));
  }

  room(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    const next = new Uint8Array(Math.max(this.buf.length * 2, this.pos + n));
    next.set(this.buf.subarray(0, this.pos));
    this.buf = next;
  }

  uv(n: number): void {
    this.room(10);
    this.pos = writeUvarint(this.buf, this.pos, n);
  }

  bytes(b: Uint8Array): void {
    this.uv(b.length);
    this.room(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
  }

  /** Bytes as they are (no length). */
  raw(b: Uint8Array): void {
    this.room(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
  }

  /** A string as its UTF-8 length plus `lengthBias`, then its bytes. */
  str(s: string, lengthBias: number): void {
    this.room(10 + s.length * 3);
    const start = this.pos + uvarintSize(s.length * 3 + lengthBias);
    const { written } = textEncoder.encodeInto(s, this.buf.subarray(start));
    // Rewrite the length with its real size and move the bytes if that varint is shorter.
    const lenPos = this.pos;
    const after = writeUvarint(this.buf, lenPos, written + lengthBias);
    if (after !== start) this.buf.copyWithin(after, start, start + written);
    this.pos = after + written;
  }

  /** The framed entry: length and CRC written into the header room. */
  finish(crc: Crc32c): Uint8Array {
    const out = this.buf.subarray(0, this.pos);
    const len = this.pos - ENTRY_HEADER_BYTES;
    const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
    view.setUint32(0, len);
    view.setUint32(4, crc(out, ENTRY_HEADER_BYTES, this.pos));
    return out;
  }
}

/** Frames a payload (a CBOR entry) the same way. */
export function framePayload(payload: Uint8Array, crc: Crc32c): Uint8Array {
  const out = new Uint8Array(ENTRY_HEADER_BYTES + payload.length);
  out.set(payload, ENTRY_HEADER_BYTES);
  const view = new DataView(out.buffer);
  view.setUint32(0, payload.length);
  view.setUint32(4, crc(out, ENTRY_HEADER_BYTES, out.length));
  return out;
}

export function encodeAppend(events: readonly OutboxEvent[], crc: Crc32c): Uint8Array {
  const w = new EntryWriter(events.length * ((events[0]?.body?.length ?? 64) + 32));
  w.buf[w.pos++] = KIND_APPEND;
  w.uv(events.length);
  let topic = '';
  let sub: string | undefined;
  for (const e of events) {
    w.uv(e.id);
    w.uv(e.p === undefined ? 0 : e.p + 2);
    w.uv(zigzag(e.seq));
    w.uv(e.bytes);
    w.uv(e.rec.ts ?? 0);
    if (e.topic === topic) w.uv(0);
    else w.str((topic = e.topic), 0);
    if (e.sub === sub) w.uv(0);
    else w.str((sub = e.sub), 1);
    w.uv(e.rec.p === undefined ? 0 : e.rec.p + 1);
    w.bytes(e.body ?? recordBody(e.rec));
  }
  return w.finish(crc);
}

export function encodeAssign(ids: readonly number[], ps: readonly number[], ss: readonly number[], crc: Crc32c): Uint8Array {
  const w = new EntryWriter(ids.length * 8);
  w.buf[w.pos++] = KIND_ASSIGN;
  w.uv(ids.length);
  for (let i = 0; i < ids.length; i++) {
    w.uv(ids[i]);
    w.uv(ps[i]);
    w.uv(ss[i]);
  }
  return w.finish(crc);
}

export function encodeRemove(ids: readonly number[], crc: Crc32c): Uint8Array {
  const w = new EntryWriter(ids.length * 2);
  w.buf[w.pos++] = KIND_REMOVE;
  w.uv(ids.length);
  let prev = 0;
  for (const id of ids) {
    w.uv(zigzag(id - prev));
    prev = id;
  }
  return w.finish(crc);
}

/**
 * Journal entries. Format 2 (`v: 2` in the snapshot) numbers events per
 * (producer, partition) through `as` entries; a journal without it was
 * written by an older client (sequences per topic, records form): its
 * producer id becomes `lpid`, for its events without `p`, and a new one is
 * made for the batch form.
 */
export type Entry =
  | {
      o: 'snap';
      v?: 2;
      pid: string;
      lpid?: string;
      /** Format 1: topic → next sequence; format 2: topic/partition → next sequence. */
      seqs: Record<string, number>;
      lastId: number;
      events: OutboxEvent[];
      failed: FailedEvent[];
      positions: Record<string, Positions>;
      skips?: Record<string, number[]>;
    }
  | { o: 'a'; ev: OutboxEvent[] }
  | { o: 'as'; ids: number[]; ps: number[]; ss: number[] }
  | { o: 'd'; ids: number[] }
  | { o: 'f'; ids: number[]; code: string; message: string; at: number }
  | { o: 'fc' }
  | { o: 'pos'; name: string; positions: Positions };

export type BinaryEntry = { o: 'a'; ev: OutboxEvent[] } | { o: 'as'; ids: number[]; ps: number[]; ss: number[] } | { o: 'd'; ids: number[] };

class Reader {
  private readonly vr: VarintRead = { value: 0, pos: 0 };
  constructor(
    private readonly b: Uint8Array,
    public pos: number,
  ) {}

  uv(): number {
    readUvarint(this.b, this.pos, this.b.length, this.vr);
    if (this.vr.pos < 0) throw new Error('journal entry truncated');
    this.pos = this.vr.pos;
    return this.vr.value;
  }

  view(n: number): Uint8Array {
    if (this.pos + n > this.b.length) throw new Error('journal entry truncated');
    const v = this.b.subarray(this.pos, this.pos + n);
    this.pos += n;
    return v;
  }

  skip(n: number): void {
    if (this.pos + n > this.b.length) throw new Error('journal entry truncated');
    this.pos += n;
  }

  str(n: number): string {
    return textDecoder.decode(this.view(n));
  }
}

/**
 * The events of an append entry (kind 1), decoded one at a time: the file
 * outbox keeps a written group of send() calls as its journal bytes and
 * makes event objects only when the drain reads them. Views into `payload`.
 */
export class AppendCursor {
  private readonly r: Reader;
  /** Events not decoded yet. */
  left: number;
  private topic = '';
  private sub = '';
  private readonly vr: VarintRead = { value: 0, pos: 0 };
  private readonly keys: Array<CachedKey | undefined> = new Array<CachedKey | undefined>(KEY_CACHE_SLOTS);

  constructor(private readonly payload: Uint8Array) {
    if (payload[0] !== KIND_APPEND) throw new Error('not an append entry');
    this.r = new Reader(payload, 1);
    this.left = this.r.uv();
  }

  /**
   * The wire record of a record body: a string key without headers (nearly
   * every event) read here with the key from the cache; anything else by
   * decodeRecordBody.
   */
  private record(b: Uint8Array, start: number, end: number): WireRecord {
    const attr = b[start];
    // A string key, a value, and the header count 0 as the last byte.
    if (end > start && ((attr >> 3) & 3) === 1 && (attr & 4) === 0 && b[end - 1] === 0) {
      const vr = this.vr;
      readUvarint(b, start + 1, end, vr);
      const keyAt = vr.pos;
      const keyEnd = keyAt + vr.value;
      if (keyAt > 0 && keyEnd < end) {
        readUvarint(b, keyEnd, end, vr);
        if (vr.pos > 0 && vr.pos + vr.value === end - 1) {
          const rec = new PackedRecord(b, vr.pos, end - 1, cachedKey(b, keyAt, keyEnd, this.keys));
          if ((attr & 3) !== 0) rec.e = (attr & 3) as WireRecord['e'];
          return rec;
        }
      }
    }
    const body = b.subarray(start, end);
    const parts = decodeRecordBody(body);
    if (!parts) throw new Error('journal entry holds a malformed record body');
    const rec: WireRecord = { v: parts.value };
    if (parts.key !== null) rec.k = parts.key;
    if (parts.encoding !== 0) rec.e = parts.encoding;
    if (parts.headers.length) rec.h = parts.headers;
    return rec;
  }

  /**
   * The events not decoded yet, as an append entry of their own (for a
   * snapshot), made without an object per event: the first one's topic and
   * subject written out (in the entry they may be "the previous event's"),
   * the rest of the payload copied as it is.
   */
  rest(crc: Crc32c): Uint8Array | null {
    if (this.left <= 0) return null;
    const r = new Reader(this.payload, this.r.pos);
    const w = new EntryWriter(this.payload.length - r.pos + 64);
    w.buf[w.pos++] = KIND_APPEND;
    w.uv(this.left);
    w.uv(r.uv()); // id
    w.uv(r.uv()); // p + 2
    w.uv(r.uv()); // zig-zag seq
    w.uv(r.uv()); // bytes
    w.uv(r.uv()); // timestamp
    const tl = r.uv();
    w.str(tl ? r.str(tl) : this.topic, 0);
    const sl = r.uv();
    w.str(sl ? r.str(sl - 1) : this.sub, 1);
    w.raw(this.payload.subarray(r.pos));
    return w.finish(crc);
  }

  /**
   * The next event's fields into `o` without an object of its own (the file
   * outbox's segments copy its body into a chunk): the body is
   * payload[o.at, o.at + o.len).
   */
  nextRaw(o: RawEvent): void {
    if (this.left <= 0) throw new Error('append entry has no more events');
    this.left--;
    const r = this.r;
    o.id = r.uv();
    o.p2 = r.uv();
    o.seq = unzigzag(r.uv());
    o.bytes = r.uv();
    o.ts = r.uv();
    const tl = r.uv();
    if (tl) this.topic = r.str(tl);
    const sl = r.uv();
    if (sl) this.sub = r.str(sl - 1);
    o.topic = this.topic;
    o.sub = this.sub;
    o.explicit = r.uv();
    o.len = r.uv();
    o.at = r.pos;
    r.skip(o.len);
  }

  /** The bytes nextRaw's offsets point into. */
  get bytes(): Uint8Array {
    return this.payload;
  }

  next(): OutboxEvent {
    if (this.left <= 0) throw new Error('append entry has no more events');
    this.left--;
    const r = this.r;
    const id = r.uv();
    const p2 = r.uv();
    const seq = unzigzag(r.uv());
    const bytes = r.uv();
    const ts = r.uv();
    const tl = r.uv();
    if (tl) this.topic = r.str(tl);
    const sl = r.uv();
    if (sl) this.sub = r.str(sl - 1);
    const explicit = r.uv();
    const len = r.uv();
    const at = r.pos;
    r.skip(len);
    const rec = this.record(this.payload, at, at + len);
    rec.ts = ts;
    if (explicit) rec.p = explicit - 1;
    if (p2) return new PackedEvent(id, this.topic, p2 - 2, seq, this.sub, rec, bytes, this.payload, at, len);
    // An older client's event (no partition, sent in the records form): a plain record, as the wire's CBOR encodes it.
    return { id, topic: this.topic, seq, sub: this.sub, rec: plainRecord(rec), bytes, body: this.payload.subarray(at, at + len) };
  }
}

/** One journaled event's fields (AppendCursor.nextRaw): p2 is p + 2 (1: not assigned), explicit the named partition + 1 (0: none). */
export interface RawEvent {
  id: number;
  p2: number;
  seq: number;
  bytes: number;
  ts: number;
  topic: string;
  sub: string;
  explicit: number;
  at: number;
  len: number;
}

/**
 * The record of a journaled event (a string key, no headers): its value is a
 * view made when something asks for it (the records form, `failed()`), as the
 * drain's batches copy the record body instead. Fewer objects per event that
 * wait in the drain's read-ahead and in flight.
 */
class PackedRecord implements WireRecord {
  declare e?: WireRecord['e'];
  declare ts?: number;
  declare p?: number;
  readonly #body: Uint8Array;
  readonly #vAt: number;
  readonly #vEnd: number;

  constructor(
    body: Uint8Array,
    vAt: number,
    vEnd: number,
    public k: string,
  ) {
    this.#body = body;
    this.#vAt = vAt;
    this.#vEnd = vEnd;
  }

  get v(): Uint8Array {
    return this.#body.subarray(this.#vAt, this.#vEnd);
  }

  /** A plain object (spread, CBOR and structuredClone see every field). */
  plain(): WireRecord {
    const rec: WireRecord = { v: this.v, k: this.k };
    if (this.e !== undefined) rec.e = this.e;
    if (this.ts !== undefined) rec.ts = this.ts;
    if (this.p !== undefined) rec.p = this.p;
    return rec;
  }
}

/** A journaled event as the drain reads it: its record body a view made on demand (batches copy it and let it go). */
class PackedEvent implements OutboxEvent {
  readonly #buf: Uint8Array;
  readonly #at: number;
  readonly #len: number;

  constructor(
    public id: number,
    public topic: string,
    public p: number,
    public seq: number,
    public sub: string,
    public rec: WireRecord,
    public bytes: number,
    buf: Uint8Array,
    at: number,
    len: number,
  ) {
    this.#buf = buf;
    this.#at = at;
    this.#len = len;
  }

  get body(): Uint8Array {
    return this.#buf.subarray(this.#at, this.#at + this.#len);
  }
}

/** A record as a plain object: a journaled event's record made whole (for a stored failure's CBOR). */
export function plainRecord(rec: WireRecord): WireRecord {
  return rec instanceof PackedRecord ? rec.plain() : rec;
}

/** Slots of AppendCursor's cache of decoded string keys (keys repeat: users, devices, orders). */
const KEY_CACHE_SLOTS = 256;
/** Keys longer than this are decoded each time. */
const KEY_CACHE_MAX_BYTES = 64;

/** A string key's bytes and its text, for AppendCursor's cache. */
interface CachedKey {
  bytes: Uint8Array;
  text: string;
}

/** The string of a UTF-8 key, from `cache` when its bytes were seen before (no view and no decode per event). */
function cachedKey(b: Uint8Array, start: number, end: number, cache: Array<CachedKey | undefined>): string {
  const n = end - start;
  if (n > KEY_CACHE_MAX_BYTES) return textDecoder.decode(b.subarray(start, end));
  let h = n;
  for (let i = start; i < end; i++) h = (Math.imul(h, 31) + b[i]) | 0;
  const slot = (h >>> 0) % KEY_CACHE_SLOTS;
  const c = cache[slot];
  if (c && c.bytes.length === n) {
    let same = true;
    for (let i = 0; i < n; i++)
      if (c.bytes[i] !== b[start + i]) {
        same = false;
        break;
      }
    if (same) return c.text;
  }
  const bytes = b.slice(start, end);
  const text = textDecoder.decode(bytes);
  cache[slot] = { bytes, text };
  return text;
}

/** An appended event's fields apart from its topic, subject and body: seven varints of at most 10 bytes. */
const ADD_FIELDS_MAX_BYTES = 70;

/** Bytes before an append group's first event: header, kind, and room for the count's uvarint. */
const GROUP_EVENTS_AT = ENTRY_HEADER_BYTES + 1 + 5;

/**
 * An append entry built one event at a time, straight from send() (the file
 * outbox's direct path): each event's fields and record body are written
 * into the entry's buffer at the call, so nothing per event outlives it but
 * these bytes. The same format as encodeAppend's (events not assigned yet).
 */
export class AppendGroup {
  private w: EntryWriter;
  count = 0;
  private topic = '';
  private sub: string | undefined;

  constructor(sizeHint: number) {
    this.w = new EntryWriter(sizeHint + GROUP_EVENTS_AT);
    this.w.pos = GROUP_EVENTS_AT;
  }

  add(id: number, topic: string, sub: string, ts: number, explicitP: number | undefined, bytes: number, body: Uint8Array): void {
    const w = this.w;
    // Room for the event once (its varints are at most 10 bytes each), not a check per field.
    w.room(ADD_FIELDS_MAX_BYTES + body.length);
    let buf = w.buf;
    let pos = writeUvarint(buf, w.pos, id);
    buf[pos++] = 1; // p + 2: not assigned yet
    buf[pos++] = 1; // zig-zag of seq -1
    pos = writeUvarint(buf, pos, bytes);
    pos = writeUvarint(buf, pos, ts);
    if (topic !== this.topic || sub !== this.sub) {
      w.pos = pos;
      if (topic === this.topic) w.uv(0);
      else w.str((this.topic = topic), 0);
      if (sub === this.sub) w.uv(0);
      else w.str((this.sub = sub), 1);
      w.room(ADD_FIELDS_MAX_BYTES + body.length);
      buf = w.buf;
      pos = w.pos;
    } else {
      buf[pos++] = 0; // the previous event's topic
      buf[pos++] = 0; // and subject
    }
    pos = writeUvarint(buf, pos, explicitP === undefined ? 0 : explicitP + 1);
    pos = writeUvarint(buf, pos, body.length);
    buf.set(body, pos);
    w.pos = pos + body.length;
    this.count++;
  }

  /** Where the entry ends now, for `reset` (a sendMany's events are taken back when one of them is invalid or they do not fit). */
  mark(): { pos: number; count: number; topic: string; sub: string | undefined } {
    return { pos: this.w.pos, count: this.count, topic: this.topic, sub: this.sub };
  }

  reset(m: ReturnType<AppendGroup['mark']>): void {
    this.w.pos = m.pos;
    this.count = m.count;
    this.topic = m.topic;
    this.sub = m.sub;
  }

  /** The framed entry (a view of the buffer: the count's uvarint is written right before the events). */
  finish(crc: Crc32c): Uint8Array {
    const buf = this.w.buf;
    const kindAt = GROUP_EVENTS_AT - uvarintSize(this.count) - 1;
    buf[kindAt] = KIND_APPEND;
    writeUvarint(buf, kindAt + 1, this.count);
    const start = kindAt - ENTRY_HEADER_BYTES;
    const out = buf.subarray(start, this.w.pos);
    const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
    view.setUint32(0, out.length - ENTRY_HEADER_BYTES);
    view.setUint32(4, crc(out, ENTRY_HEADER_BYTES, out.length));
    return out;
  }
}

/** Reads a binary entry (views into `payload`); throws on a malformed one. */
export function decodeBinaryEntry(payload: Uint8Array): BinaryEntry {
  if (payload[0] === KIND_APPEND) {
    const ev: OutboxEvent[] = [];
    const cur = new AppendCursor(payload);
    while (cur.left > 0) ev.push(cur.next());
    return { o: 'a', ev };
  }
  const r = new Reader(payload, 1);
  const count = r.uv();
  switch (payload[0]) {
    case KIND_ASSIGN: {
      const ids: number[] = [];
      const ps: number[] = [];
      const ss: number[] = [];
      for (let i = 0; i < count; i++) {
        ids.push(r.uv());
        ps.push(r.uv());
        ss.push(r.uv());
      }
      return { o: 'as', ids, ps, ss };
    }
    case KIND_REMOVE: {
      const ids: number[] = [];
      let prev = 0;
      for (let i = 0; i < count; i++) ids.push((prev += unzigzag(r.uv())));
      return { o: 'd', ids };
    }
    default:
      throw new Error(`unknown journal entry kind ${payload[0]}`);
  }
}
