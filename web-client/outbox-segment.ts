/**
 * Outbox segments: events held as bytes, not as one object each.
 *
 * A store that keeps its events in memory (outbox-memory.ts) copies each
 * appended event's record body (encoded once at `send()`) into the open
 * `Chunk` of its topic and subject: one growing byte buffer and a few typed
 * columns (timestamp, partition route, bound size), ids dense from the
 * chunk's first. The event objects `send()` built die young, and the
 * outbox holds a handful of objects per ten thousand events.
 *
 * When the drainer assigns a chunk (`sealChunk`: the same rule and the same
 * moment as `OutboxStore.assign` for single events: partition from the count
 * known then, sequence dense per producer and partition, in id order), the
 * chunk becomes `Segment`s: each one record batch of one partition, bytes as
 * the hub stores them (protocol/batch.ts), its base sequence written in. The
 * drain sends a segment's bytes as they are, as often as it must (a resend
 * after a cut carries the same sequences), and an ack drops the segment
 * whole; per-event ids and sequences come from the segment's columns.
 *
 * Anything unusual (a refusal, a lane with refused-for-good sequences, a
 * smaller batch limit after a split) turns a segment back into single
 * events (`segmentEvents`), which the drain handles as it always did.
 */
import {
  BATCH_HEADER_BYTES,
  CRC_START,
  ENCODING_CODE,
  O_CRC,
  LIMITS,
  decodeBatchTrusted,
  decodeRecordBody,
  recordBodySize,
  writeRecordBody,
  writeTextRecordBodyAt,
  murmur2,
  partitionForUnkeyed,
  utf8,
  uvarintSize,
  utf8Length,
  writeBatchHeader,
  writeUint32,
  writeUvarint,
  zigzag,
  type Crc32c,
  type WireRecord,
} from '../protocol/index.ts';
import { ClientError } from './errors.ts';
import { takeBatchBuffer } from './outbox-batch-pool.ts';
import { frameRoom } from './outbox-frame.ts';
import {
  boundBytes,
  checkFitsFrame,
  checkedValue,
  eventKey,
  eventPartition,
  eventTimestamp,
  headerPairs,
  isJsonText,
  jsonValueText,
  recordBody,
  valueTooLarge,
  type SendEvent,
} from './event-input.ts';
import type { NewOutboxEvent, OutboxEvent } from './outbox.ts';
import type { StagedEvents } from './outbox-memory.ts';

/** Events per chunk: a chunk is assigned at once, so it stays within a few batches per partition. */
export const CHUNK_MAX_EVENTS = 8_000;
/** route column: the event names no partition and has no key (runs of ids per partition). */
const ROUTE_UNKEYED = -1;
/** route column: the partition comes from the key's hash (`hash` column). */
const ROUTE_KEYED = -2;
/** Keys whose murmur2 hash is remembered (keys repeat: users, devices, orders). */
const KEY_HASH_CACHE_MAX = 10_000;
const keyHashes = new Map<string, number>();

export function keyHash(k: string | Uint8Array): number {
  if (typeof k !== 'string') return murmur2(k) & 0x7fffffff;
  let h = keyHashes.get(k);
  if (h === undefined) {
    if (keyHashes.size >= KEY_HASH_CACHE_MAX) keyHashes.clear();
    h = murmur2(utf8(k)) & 0x7fffffff;
    keyHashes.set(k, h);
  }
  return h;
}

/**
 * Buffers of sealed full chunks, for the next full chunk to take: a busy
 * producer seals a chunk of about a megabyte every few milliseconds, and
 * allocating each anew kept the garbage collector busy (external memory).
 */
const spares: Array<Pick<Chunk, 'buf' | 'ends' | 'ts' | 'route' | 'hash' | 'sizes'>> = [];
const MAX_SPARES = 2;

const EMPTY = new Uint8Array(0);
const EMPTY_U32 = new Uint32Array(0);
const EMPTY_F64 = new Float64Array(0);
const EMPTY_I32 = new Int32Array(0);

/** Events of one topic and subject, appended in id order, not yet assigned partitions. */
export class Chunk {
  readonly kind = 'chunk';
  /** Written at the call into its partitions' batches (outbox-routed-chunk.ts): not written into as a plain chunk. */
  readonly routed: boolean = false;
  count = 0;
  /** Events of the chunk still in the outbox (not acked, not failed). */
  live = 0;
  /** Bytes counted against the outbox's bound. */
  bytes = 0;
  /** Set by sealChunk: the segments (and, once split up, events) this chunk became. */
  sealed?: Array<Segment | OutboxEvent>;
  buf: Uint8Array;
  /** Record body i is buf[ends[i-1] .. ends[i]). */
  ends: Uint32Array;
  ts: Float64Array;
  route: Int32Array;
  hash: Int32Array;
  sizes: Uint32Array;

  constructor(
    readonly topic: string,
    readonly sub: string,
    /** Id of the first event (set once, before the chunk joins an outbox: a staged routed chunk's when it moves in). */
    public id: number,
    /**
     * Body bytes the full chunk before held (0: none): a burst's chunks are
     * alike, so the next one starts at its size instead of doubling its way
     * there (each doubling copies what it holds).
     */
    bodyBytesHint = 0,
  ) {
    if (bodyBytesHint < 0) {
      // A chunk that keeps its events elsewhere (outbox-routed-chunk.ts).
      this.buf = EMPTY;
      this.ends = this.sizes = EMPTY_U32;
      this.ts = EMPTY_F64;
      this.route = this.hash = EMPTY_I32;
      return;
    }
    const want = Math.max(64 * 1024, Math.ceil(bodyBytesHint * 1.125));
    const spare = bodyBytesHint > 0 ? spares.pop() : undefined;
    if (spare && spare.buf.length >= want) {
      // A sealed chunk's buffers: a burst's chunks come and go at the same size.
      this.buf = spare.buf;
      this.ends = spare.ends;
      this.ts = spare.ts;
      this.route = spare.route;
      this.hash = spare.hash;
      this.sizes = spare.sizes;
      return;
    }
    const n = bodyBytesHint > 0 ? CHUNK_MAX_EVENTS : 256;
    this.buf = new Uint8Array(want);
    this.ends = new Uint32Array(n);
    this.ts = new Float64Array(n);
    this.route = new Int32Array(n);
    this.hash = new Int32Array(n);
    this.sizes = new Uint32Array(n);
  }

  /** Bytes of the bodies written so far (0 once sealed). */
  get bodyBytes(): number {
    return this.ends.length === 0 ? 0 : this.bodyStart(this.count);
  }

  /** Id of the last event. */
  get lastId(): number {
    return this.id + this.count - 1;
  }

  /** Appends one event (its id is the next one: id + count), its record body as `send()` encoded it. */
  add(e: NewOutboxEvent): void {
    const i = this.count;
    if (i === this.ends.length) this.growColumns();
    const start = this.bodyStart(i);
    // An entry from elsewhere than send() (a store used directly) may come without its body.
    const body = e.body ?? recordBody(e.rec);
    this.room(start + body.length);
    this.buf.set(body, start);
    this.ends[i] = start + body.length;
    const rec = e.rec;
    this.ts[i] = rec.ts!;
    this.setRoute(i, rec.p, rec.k ?? null);
    this.sizes[i] = e.bytes;
    this.bytes += e.bytes;
    this.count = i + 1;
  }

  /** Where event i's record body starts in `buf`. */
  bodyStart(i: number): number {
    return i === 0 ? 0 : this.ends[i - 1];
  }

  /** Event i's route: its explicit partition, else its key's hash, else unkeyed (partitionOf). */
  private setRoute(i: number, p: number | undefined, key: string | Uint8Array | null): void {
    if (p !== undefined) this.route[i] = p;
    else if (key === null) this.route[i] = ROUTE_UNKEYED;
    else {
      this.route[i] = ROUTE_KEYED;
      this.hash[i] = keyHash(key);
    }
  }

  /**
   * Validates `send()`'s event and encodes it straight into this chunk as
   * event `count` (send()'s fast path: no record object, no body of its own,
   * no copy), without counting it: `commit` does once it fits the bounds.
   * Returns its bound size; throws what `toOutboxRecord` throws, in its order.
   * With `checkOnly`, a value that is bytes already is checked, not written.
   */
  write(event: SendEvent, now: number, maxEventBytes: number, checkOnly = false): number {
    const key = eventKey(event);
    const headers = headerPairs(event.headers);
    const i = this.count;
    if (i === this.ends.length) this.growColumns();
    const start = this.bodyStart(i);
    let valueBytes: number;
    let end: number;
    if (isJsonText(event)) {
      const text = jsonValueText(event.value, key, headers);
      const fixed = recordBodySize(key, null, headers);
      this.room(start + fixed + 3 * text.length + 5);
      valueBytes = writeTextRecordBodyAt(this.buf, start, key, text, ENCODING_CODE.json, headers, LIMITS.maxValueBytes);
      if (valueBytes < 0) valueTooLarge(utf8Length(text));
      end = start + fixed + uvarintSize(valueBytes) + valueBytes;
    } else {
      const encoded = checkedValue(event, key, headers);
      const value = encoded.value;
      end = start + recordBodySize(key, value, headers);
      if (!checkOnly) {
        this.room(end);
        writeRecordBody(this.buf, start, key, value, ENCODING_CODE[encoded.encoding], headers);
      }
      valueBytes = value?.length ?? 0;
    }
    const bytes = boundBytes(key, valueBytes, headers);
    const ts = eventTimestamp(event, now);
    const p = eventPartition(event);
    if (!checkOnly) this.setRoute(i, p, key);
    checkFitsFrame(bytes);
    if (bytes > maxEventBytes) throw new ClientError('OUTBOX_FULL', `event of ${bytes} bytes exceeds the outbox's maxOutboxBytes (${maxEventBytes})`);
    this.ends[i] = end;
    this.ts[i] = ts;
    this.sizes[i] = bytes;
    return bytes;
  }

  /** Counts the event `write` put at `count`. */
  commit(bytes: number): void {
    this.count++;
    this.live++;
    this.bytes += bytes;
  }

  /** Grows the body buffer to hold `size` bytes, keeping the bodies written. */
  private room(size: number): void {
    if (size <= this.buf.length) return;
    const next = new Uint8Array(Math.max(this.buf.length * 2, size));
    next.set(this.buf.subarray(0, this.bodyStart(this.count)));
    this.buf = next;
  }

  /** Once sealed, the bodies live in the segments' batches: the chunk's own copy goes. */
  dropBodies(): void {
    // Full-size buffers are kept for the next chunk (nothing holds a view of them: records and segments copy).
    if (this.ends.length === CHUNK_MAX_EVENTS && spares.length < MAX_SPARES) spares.push({ buf: this.buf, ends: this.ends, ts: this.ts, route: this.route, hash: this.hash, sizes: this.sizes });
    this.buf = EMPTY;
    this.ends = this.sizes = EMPTY_U32;
    this.ts = EMPTY_F64;
    this.route = this.hash = EMPTY_I32;
  }

  private growColumns(): void {
    const n = this.ends.length * 2;
    const grow = <T extends Uint32Array | Float64Array | Int32Array>(a: T, make: (n: number) => T): T => {
      const b = make(n);
      b.set(a);
      return b;
    };
    this.ends = grow(this.ends, (n) => new Uint32Array(n));
    this.ts = grow(this.ts, (n) => new Float64Array(n));
    this.route = grow(this.route, (n) => new Int32Array(n));
    this.hash = grow(this.hash, (n) => new Int32Array(n));
    this.sizes = grow(this.sizes, (n) => new Uint32Array(n));
  }

  /** The partition event i goes to with `partitions` partitions (the drain's rule, outbox-drain.ts). */
  partitionOf(i: number, partitions: number, producerId: string): number {
    const r = this.route[i];
    if (r >= 0) return r;
    if (r === ROUTE_KEYED) return this.hash[i] % partitions;
    return partitionForUnkeyed(producerId, this.id + i, partitions);
  }

  /** The wire record of event i (for the failed list and the rare paths that want events). */
  record(i: number): WireRecord {
    const start = this.bodyStart(i);
    // A copy: the record outlives this chunk's buffer (failed list), and views would pin it.
    const parts = decodeRecordBody(this.buf.slice(start, this.ends[i]))!;
    const rec: WireRecord = { v: parts.value, ts: this.ts[i] };
    if (parts.key !== null) rec.k = parts.key;
    if (parts.encoding !== 0) rec.e = parts.encoding;
    if (parts.headers.length) rec.h = parts.headers;
    if (this.route[i] >= 0) rec.p = this.route[i];
    return rec;
  }

  /** The chunk's events as single, unassigned events (p = -1, seq = -1). */
  events(): OutboxEvent[] {
    const out = new Array<OutboxEvent>(this.count);
    for (let i = 0; i < this.count; i++) out[i] = { id: this.id + i, topic: this.topic, p: -1, seq: -1, sub: this.sub, rec: this.record(i), bytes: this.sizes[i] };
    return out;
  }
}

/** The chunk `checkEvents` writes into and never counts (what it holds is overwritten by the next check). */
let scratch: Chunk | undefined;

/**
 * Validates `events[from..to)` as `Chunk.write` does (the same checks in the
 * same order, the same errors), keeping nothing: for the part of a
 * `sendMany` that waits for room, checked before any of the call stays in.
 */
export function checkEvents(events: ArrayLike<SendEvent>, from: number, to: number, now: number, maxEventBytes: number): void {
  const c = (scratch ??= new Chunk('', '', 0));
  for (let i = from; i < to; i++) c.write(events[i], now, maxEventBytes, true);
  // A very large event grew it: not kept for the next call.
  if (c.buf.length > 1024 * 1024) scratch = undefined;
}

/** One record batch of one partition, sequences assigned, bytes ready for the wire. */
export interface Segment {
  readonly kind: 'segment';
  topic: string;
  sub: string;
  p: number;
  /** Outbox sequence of the first record (record i has seq + i). */
  seq: number;
  count: number;
  /** Bytes counted against the outbox's bound. */
  bytes: number;
  /** Per record: outbox id and bound size. */
  ids: Float64Array;
  sizes: Uint32Array;
  /** The batch as sent (base offset and append time left for the hub). */
  batch: Uint8Array;
  /**
   * Optional: bytes before `batch` in its buffer that are the segment's own,
   * room for a produce frame's fields (`segmentFrame`): a request of this one
   * segment is then sent without copying the batch into a frame.
   */
  room?: number;
  /** The batch's buffer came from outbox-batch-pool.ts: its store hands it back once the segment is removed. */
  pooled?: boolean;
  /** The chunk it came from (its store drops the chunk once every segment of it is gone). */
  chunk: Chunk;
}

export function isSegment(x: unknown): x is Segment {
  return (x as { kind?: unknown }).kind === 'segment';
}

/** Index of the first of `chunks` (in id order) after `after`: chunks never move back, so the first with a higher id. */
export function chunkIndexAfter(chunks: readonly Chunk[], after: Chunk | undefined): number {
  if (!after) return 0;
  let lo = 0;
  let hi = chunks.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (chunks[mid].id <= after.id) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** A sealed segment as single events, put in its place in its chunk's sealed list (a refusal speaks of its records one by one). */
export function splitSealedSegment(seg: Segment): OutboxEvent[] {
  const list = seg.chunk.sealed!;
  const at = list.indexOf(seg);
  const events = segmentEvents(seg);
  if (at >= 0) list.splice(at, 1, ...events);
  return events;
}

/** The chunk of `chunks` (in id order) holding event `id`, or undefined. */
export function chunkHolding(chunks: readonly Chunk[], id: number): Chunk | undefined {
  let lo = 0;
  let hi = chunks.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (chunks[mid].lastId < id) lo = mid + 1;
    else hi = mid;
  }
  const c = chunks[lo];
  return c && c.id <= id ? c : undefined;
}

export function isChunk(x: unknown): x is Chunk {
  return x instanceof Chunk;
}

/**
 * What a store that holds segments offers the drain (optional: `OutboxStore.segments`).
 * The drain then reads chunks instead of events, assigns a chunk at a time,
 * and removes segments; the single events a split segment became go
 * through the store's usual `remove` and `fail`.
 */
export interface SegmentStore {
  /** Chunks after `after` (from the first when absent), in id order, up to about `maxEvents` live events. */
  readChunks(after: Chunk | undefined, maxEvents: number): Chunk[];
  /**
   * Assigns a chunk (`sealChunk`) unless it is already: afterwards `chunk.sealed` holds what is left of it.
   * A store that writes the assignment to disk returns a promise: its segments go on the wire once it resolves.
   */
  sealChunk(chunk: Chunk, partitions: number, limits: SealLimits, crc: Crc32c): void | Promise<void>;
  /** Replaces a segment by its events (in its chunk's `sealed` list) and returns them. */
  splitSegment(seg: Segment): OutboxEvent[];
  /**
   * Optional: send()'s fast path. Validates `events[from..to)` of one topic
   * and encodes them straight into the open chunk of `topic` and `sub`, in
   * order, up to the first that does not fit `bounds` (a prefix: returns how
   * many went in). An invalid event throws with none of this call's events
   * in. `rest(n)` runs before the call returns when it stopped short (it
   * validates the others: if it throws, none is in either).
   */
  appendEvents?(topic: string, sub: string, events: ArrayLike<SendEvent>, from: number, to: number, now: number, bounds: { maxEvents: number; maxBytes: number }, rest?: (n: number) => void): number;
  /** The part of a sendMany that waits for room: checked and encoded once, outside the outbox; appendStaged moves in what fits, in order, and says how many. */
  stageEvents?(topic: string, sub: string, events: ArrayLike<SendEvent>, from: number, to: number, now: number, maxEventBytes: number, bounds?: { maxEvents: number; maxBytes: number }): StagedEvents;
  appendStaged?(staged: StagedEvents, bounds: { maxEvents: number; maxBytes: number }): number;
  /** Removes acked segments and events (absent ones are ignored); a promise when it writes to disk. */
  removeItems(items: Array<Segment | OutboxEvent>): void | Promise<void>;
  /** Moves unassigned chunks and single events to the failed list (`OutboxStore.fail`); a promise when it writes to disk. */
  failItems(items: Array<Chunk | OutboxEvent>, code: string, message: string): void | Promise<void>;
}

/** Batch limits a sealed segment keeps within. */
export interface SealLimits {
  maxRecords: number;
  /** Bytes of the batch (header included). */
  maxBytes: number;
}

/**
 * Assigns a chunk: each event's partition from `partitions`, sequences from
 * `next` (per partition, the next sequence; advanced in place), in id order;
 * each partition's events become batches within `limits`. Returns the
 * segments, in id order of their first events.
 */
export function sealChunk(chunk: Chunk, partitions: number, next: number[], producerId: string, limits: SealLimits, crc: Crc32c): Segment[] {
  const n = chunk.count;
  const parts = new Int32Array(n);
  const perPartition = new Int32Array(partitions);
  for (let i = 0; i < n; i++) {
    const p = chunk.partitionOf(i, partitions, producerId);
    parts[i] = p;
    perPartition[p]++;
  }
  const pidLen = utf8Length(producerId);
  const headerBytes = BATCH_HEADER_BYTES + pidLen;
  const out: Segment[] = [];
  // Per partition, its events' indexes in id order.
  const order = new Int32Array(n);
  const at = new Int32Array(partitions);
  for (let p = 0, s = 0; p < partitions; p++) {
    at[p] = s;
    s += perPartition[p];
  }
  for (let i = 0; i < n; i++) order[at[parts[i]]++] = i;
  let from = 0;
  for (let p = 0; p < partitions; p++) {
    const end = from + perPartition[p];
    while (from < end) {
      // One batch: as many of this partition's next events as fit the limits.
      const firstTs = chunk.ts[order[from]];
      let total = headerBytes;
      let k = 0;
      while (from + k < end && k < limits.maxRecords) {
        const i = order[from + k];
        const size = recordSize(chunk, i, k, firstTs);
        const add = uvarintSize(size) + size;
        if (k > 0 && total + add > limits.maxBytes) break;
        total += add;
        k++;
      }
      out.push(encodeSegment(chunk, order.subarray(from, from + k), p, next[p] ?? 0, total, producerId, pidLen, crc));
      next[p] = (next[p] ?? 0) + k;
      from += k;
    }
  }
  out.sort((a, b) => a.ids[0] - b.ids[0]);
  return out;
}

/** Bytes of record i at place k of a batch whose first timestamp is firstTs, after its length varint. */
function recordSize(chunk: Chunk, i: number, k: number, firstTs: number): number {
  const d = uvarintSize(k);
  return chunk.ends[i] - chunk.bodyStart(i) + d + d + uvarintSize(zigzag(chunk.ts[i] - firstTs));
}

function encodeSegment(chunk: Chunk, idx: Int32Array, p: number, seq: number, total: number, producerId: string, pidLen: number, crc: Crc32c): Segment {
  const count = idx.length;
  const firstTs = chunk.ts[idx[0]];
  let maxTs = firstTs;
  for (let k = 1; k < count; k++) if (chunk.ts[idx[k]] > maxTs) maxTs = chunk.ts[idx[k]];
  const room = frameRoom(chunk.topic);
  // Not zeroed: every byte of the batch is written below, and the frame's fields before it when sent.
  const buf = takeBatchBuffer(room + total).subarray(room, room + total);
  let pos = writeBatchHeader(
    buf,
    { total, count, lastOffsetDelta: count - 1, firstTimestamp: firstTs, maxTimestamp: maxTs, lastSequenceDelta: count - 1, baseSequence: seq, baseOffset: 0, appendTime: -1 },
    producerId,
    pidLen,
  );
  const ids = new Float64Array(count);
  const sizes = new Uint32Array(count);
  let bytes = 0;
  // Columns in locals: the loop runs per record.
  const src = chunk.buf;
  const ends = chunk.ends;
  const tsCol = chunk.ts;
  const sizeCol = chunk.sizes;
  const id0 = chunk.id;
  for (let k = 0; k < count; k++) {
    const i = idx[k];
    const start = i === 0 ? 0 : ends[i - 1];
    const end = ends[i];
    const tsd = zigzag(tsCol[i] - firstTs);
    const d = uvarintSize(k);
    pos = writeUvarint(buf, pos, end - start + d + d + uvarintSize(tsd));
    buf[pos++] = src[start]; // attributes
    pos = writeUvarint(buf, pos, k);
    pos = writeUvarint(buf, pos, k);
    pos = writeUvarint(buf, pos, tsd);
    const len = end - start - 1;
    if (len > 48) buf.set(src.subarray(start + 1, end), pos);
    else for (let j = 0; j < len; j++) buf[pos + j] = src[start + 1 + j];
    pos += len;
    ids[k] = id0 + i;
    const size = sizeCol[i];
    sizes[k] = size;
    bytes += size;
  }
  if (pos !== total) throw new Error(`segment size mismatch: wrote ${pos} of ${total}`);
  writeUint32(buf, O_CRC, crc(buf, CRC_START, total));
  return { kind: 'segment', topic: chunk.topic, sub: chunk.sub, p, seq, count, bytes, ids, sizes, batch: buf, chunk, room, pooled: true };
}

/** A segment as single events (assigned: partition and sequences kept), records read back from its batch. */
export function segmentEvents(s: Segment): OutboxEvent[] {
  const recs = decodeBatchTrusted(s.batch.slice());
  const out = new Array<OutboxEvent>(s.count);
  for (let k = 0; k < s.count; k++) {
    const r = recs[k];
    const rec: WireRecord = { v: r.value, ts: r.timestamp };
    if (r.key !== null) rec.k = r.key;
    const e = ENCODING_CODE[r.encoding];
    if (e !== 0) rec.e = e;
    if (r.headers.length) rec.h = r.headers;
    out[k] = { id: s.ids[k], topic: s.topic, p: s.p, seq: s.seq + k, sub: s.sub, rec, bytes: s.sizes[k] };
  }
  return out;
}
