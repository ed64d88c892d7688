/**
 * How the IndexedDB outbox keeps one group commit's events: one record per
 * chunk, in columns. Profiled in Chromium (CDP), the CBOR form of earlier
 * versions spent 7% of a send burst in encoding and 15% of a drain in
 * decoding (with its UTF-8 scan). Columns are a few typed arrays and strings,
 * which structured clone copies as blocks, with no per-event object at all:
 *
 *   ts, bytes        Float64Array / Uint32Array, one slot per event
 *   topics, subs     the chunk's distinct topics and subjects; topicOf /
 *                    subOf (Uint16Array) only when there is more than one
 *   keys + keyLen    string keys joined into one string, with their lengths
 *                    (-1: no key; -2: a byte key, in `extra`)
 *   vals + valLen    values concatenated into one buffer (-1: tombstone);
 *                    `vals` absent when every event has a body: a value is
 *                    then read from its body (where it sits as it is), so
 *                    the value bytes are stored once, not twice
 *   enc              value encoding code per event
 *   bodyLen + bodies record bodies (pre-encoded record bytes) when events
 *                    carry them, concatenated (-1: none)
 *   extra            the rare rest per event index: byte keys, headers,
 *                    explicit partitions
 *
 * A chunk written by an older version (`data`: CBOR of the events) still
 * reads: the store never rewrites chunks, so both kinds live side by side
 * until the old ones drain.
 */
import type { Header, WireEncoding, WireRecord } from '../protocol/index.ts';
import { decodeCbor, readUvarint, type VarintRead } from '../protocol/index.ts';
import type { OutboxEvent } from './outbox.ts';

/** A chunk as version 1–2 wrote it. */
interface CborChunk {
  first: number;
  /** CBOR of OutboxEvent[]. */
  data: Uint8Array;
}

export interface ColumnChunk {
  first: number;
  n: number;
  ts: Float64Array;
  bytes: Uint32Array;
  topics: string[];
  topicOf?: Uint16Array;
  subs: string[];
  subOf?: Uint16Array;
  keys: string;
  keyLen: Int32Array;
  /** Absent: every event has a body, and its value is read from there. */
  vals?: Uint8Array;
  valLen: Int32Array;
  enc: Uint8Array;
  bodies?: Uint8Array;
  bodyLen?: Int32Array;
  extra?: Array<[number, { k?: Uint8Array; h?: Header[]; p?: number }]>;
}

export type StoredChunk = CborChunk | ColumnChunk;

/** Index into `list` of `value`, appending it when new. Chunks have one or a few distinct values. */
function indexIn(list: string[], value: string): number {
  for (let i = list.length - 1; i >= 0; i--) if (list[i] === value) return i;
  list.push(value);
  return list.length - 1;
}

/**
 * The chunk record for events with consecutive ids (one group commit's, in id order). With `bodies`
 * false the events' record bodies are left out (values kept instead), as the IndexedDB store writes
 * them: see IdbOutboxStore.append.
 */
export function encodeChunk(events: readonly OutboxEvent[], bodies = true): ColumnChunk {
  const n = events.length;
  const ts = new Float64Array(n);
  const bytes = new Uint32Array(n);
  const topics: string[] = [];
  const subs: string[] = [];
  const topicOf = new Uint16Array(n);
  const subOf = new Uint16Array(n);
  const keyLen = new Int32Array(n);
  const valLen = new Int32Array(n);
  const enc = new Uint8Array(n);
  let keys = '';
  let valTotal = 0;
  let bodyTotal = 0;
  let withBody = 0;
  let extra: ColumnChunk['extra'];
  for (let i = 0; i < n; i++) {
    const e = events[i];
    const r = e.rec;
    ts[i] = r.ts ?? NaN;
    bytes[i] = e.bytes;
    topicOf[i] = indexIn(topics, e.topic);
    subOf[i] = indexIn(subs, e.sub);
    const k = r.k;
    if (typeof k === 'string') {
      keyLen[i] = k.length;
      keys += k;
    } else keyLen[i] = k == null ? -1 : -2;
    valLen[i] = r.v === null ? -1 : r.v.length;
    if (r.v !== null) valTotal += r.v.length;
    enc[i] = r.e ?? 0;
    if (bodies && e.body) {
      withBody++;
      bodyTotal += e.body.length;
    }
    if (k instanceof Uint8Array || r.h !== undefined || r.p !== undefined) {
      const x: { k?: Uint8Array; h?: Header[]; p?: number } = {};
      if (k instanceof Uint8Array) x.k = k;
      if (r.h !== undefined) x.h = r.h;
      if (r.p !== undefined) x.p = r.p;
      (extra ??= []).push([i, x]);
    }
  }
  const chunk: ColumnChunk = { first: events[0].id, n, ts, bytes, topics, subs, keys, keyLen, valLen, enc };
  let pos = 0;
  if (withBody < n) {
    const vals = new Uint8Array(valTotal);
    for (let i = 0; i < n; i++) {
      const v = events[i].rec.v;
      if (v === null) continue;
      vals.set(v, pos);
      pos += v.length;
    }
    chunk.vals = vals;
  }
  if (topics.length > 1) chunk.topicOf = topicOf;
  if (subs.length > 1) chunk.subOf = subOf;
  if (extra) chunk.extra = extra;
  if (withBody > 0) {
    const all = new Uint8Array(bodyTotal);
    const bodyLen = new Int32Array(n);
    pos = 0;
    for (let i = 0; i < n; i++) {
      const b = events[i].body;
      bodyLen[i] = b ? b.length : -1;
      if (!b) continue;
      all.set(b, pos);
      pos += b.length;
    }
    chunk.bodies = all;
    chunk.bodyLen = bodyLen;
  }
  return chunk;
}

/**
 * The value of a record body (protocol/record-body.ts: attributes, then the
 * key's and the value's uvarint lengths and bytes), as a view; `length` is
 * the value's length as the chunk recorded it, checked against the body's.
 */
function valueInBody(body: Uint8Array, length: number): Uint8Array {
  const at: VarintRead = { value: 0, pos: 1 };
  if (((body[0] >> 3) & 3) !== 0) {
    readUvarint(body, at.pos, body.length, at); // a key: its length, then its bytes
    if (at.pos >= 0) at.pos += at.value;
  }
  if (at.pos >= 0) readUvarint(body, at.pos, body.length, at);
  if (at.pos < 0 || at.value !== length || at.pos + length > body.length) throw new TypeError(`outbox chunk: a record body does not hold the value of ${length} bytes its chunk records`);
  return body.subarray(at.pos, at.pos + length);
}

/**
 * The events of a chunk, unassigned (p -1, seq -1; the caller applies
 * chunkAssign). Values and bodies are views into the chunk's buffers.
 */
export function decodeChunk(chunk: StoredChunk): OutboxEvent[] {
  if ('data' in chunk) return decodeCbor(chunk.data) as OutboxEvent[];
  const { first, n, ts, bytes, topics, topicOf, subs, subOf, keys, keyLen, vals, valLen, enc, bodies, bodyLen } = chunk;
  const extra = new Map(chunk.extra);
  const out = new Array<OutboxEvent>(n);
  let kpos = 0;
  let vpos = 0;
  let bpos = 0;
  for (let i = 0; i < n; i++) {
    const vl = valLen[i];
    let body: Uint8Array | undefined;
    if (bodies && bodyLen && bodyLen[i] >= 0) body = bodies.subarray(bpos, (bpos += bodyLen[i]));
    let v: Uint8Array | null = null;
    if (vl >= 0) v = vals ? vals.subarray(vpos, (vpos += vl)) : valueInBody(body!, vl);
    const rec: WireRecord = { v };
    const kl = keyLen[i];
    if (kl >= 0) {
      rec.k = keys.slice(kpos, kpos + kl);
      kpos += kl;
    }
    if (enc[i] !== 0) rec.e = enc[i] as WireEncoding;
    if (!Number.isNaN(ts[i])) rec.ts = ts[i];
    const x = extra.get(i);
    if (x) {
      if (x.k) rec.k = x.k;
      if (x.h) rec.h = x.h;
      if (x.p !== undefined) rec.p = x.p;
    }
    const e: OutboxEvent = { id: first + i, topic: topics[topicOf ? topicOf[i] : 0], p: -1, seq: -1, sub: subs[subOf ? subOf[i] : 0], rec, bytes: bytes[i] };
    if (body) e.body = body;
    out[i] = e;
  }
  return out;
}
