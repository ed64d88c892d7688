/**
 * A chunk encoded at the call straight into its partitions' record batches.
 *
 * A plain `Chunk` (outbox-segment.ts) holds record bodies in id order and is
 * encoded a second time when the drain seals it: each body copied, with its
 * varints, into its partition's batch. Where the store already knows the
 * topic's partition count and the drain's batch limits (from the last
 * chunk it sealed), a `RoutedChunk` picks each event's partition at the call
 * (murmur2 of the key, or the event's own partition, as `partitionOf` does)
 * and writes the whole record (length, offset and sequence deltas, timestamp
 * delta, body) at the end of that partition's open batch, behind room for
 * the batch header and a produce frame's fields. Sealing then writes each
 * batch's header (its base sequence: sequences are still assigned at seal,
 * per partition in id order) and CRC, and the batch goes out as it is.
 *
 * The rule for a partition count that changed meanwhile (docs/web-client.md:
 * partitions are chosen when events are assigned, with the count known
 * then) holds: a routed chunk sealed with another count, or with smaller
 * batch limits than it was written for, is read back into a plain chunk and
 * sealed as one (`reroute`); no sequence was taken before, so exactly-once
 * is as for any chunk.
 *
 * Unkeyed events without a partition go where their outbox id sends them
 * (`partitionForUnkeyed`), so only into a chunk whose ids are known (one in
 * the outbox: `appendEvents`' open chunk); a staged chunk's ids are not
 * (its id is 0 until it moves in): `writeRouted` says so and the store
 * stages the call as plain chunks.
 */
import {
  BATCH_HEADER_BYTES,
  CRC_START,
  ENCODING_CODE,
  LIMITS,
  O_CRC,
  decodeBatchTrusted,
  partitionForUnkeyed,
  recordBodySize,
  uvarintSize,
  utf8Length,
  writeBatchHeader,
  writeRecordBody,
  writeTextRecordBodyAt,
  writeUint32,
  writeUvarint,
  zigzag,
  type Crc32c,
  type WireRecord,
} from '../protocol/index.ts';
import { ClientError } from './errors.ts';
import { checkFitsFrame, checkedValue, boundBytes, eventKey, eventPartition, eventTimestamp, headerPairs, isJsonText, jsonValueText, valueTooLarge, type SendEvent } from './event-input.ts';
import { giveBatchBuffer, takeBatchBuffer } from './outbox-batch-pool.ts';
import { Chunk, keyHash, sealChunk, type SealLimits, type Segment } from './outbox-segment.ts';
import { frameRoom } from './outbox-frame.ts';
import type { OutboxEvent } from './outbox.ts';

/** `write`: the event has no key and no partition, and the chunk's ids are not known yet (its partition depends on its id). */
export const UNROUTED = -1;
/** `write`: the event's partition batch is full (or its partition is outside the count): a new chunk takes it. */
export const PART_FULL = -2;

/** Bytes of the last partition batch sealed (at most LAST_PART_MAX): a new part's buffer starts at that size. */
let lastPartBytes = 0;
const LAST_PART_MAX = 1024 * 1024;

/** The open batch of one partition. */
interface Part {
  /** Room for a frame's fields, then the batch header, then the records. */
  buf: Uint8Array;
  /** End of the records written. */
  pos: number;
  count: number;
  firstTs: number;
  maxTs: number;
  /** Per record: its index in the chunk (id - chunk id), its bound size, whether the event named its partition. */
  idx: Int32Array;
  sizes: Uint32Array;
  named: Uint8Array;
}

/** The partition batches a chunk is written for. */
export interface RouteHint {
  partitions: number;
  limits: SealLimits;
}

export class RoutedChunk extends Chunk {
  override readonly routed = true;
  private readonly parts: Array<Part | undefined>;
  /** Where the batch header starts in a part's buffer, and where its records start. */
  private readonly frameAt: number;
  private readonly recordsAt: number;
  /** What `write` left for `commit`. */
  private pendP = 0;
  private pendEnd = 0;
  private pendTs = 0;
  private pendNamed = 0;
  /** Unkeyed events: the run of ids (`partitionForUnkeyed` is constant over 1024 ids) whose partition was found last. */
  private unkeyedRun = -1;
  private unkeyedP = 0;
  /** `mark`: per partition, its count, end of records and max timestamp. */
  private marks?: Float64Array;

  constructor(
    topic: string,
    sub: string,
    id: number,
    readonly hint: RouteHint,
    readonly producerId: string,
    /** Events at most (the store keeps a chunk well within the outbox's bounds, which it joins whole). */
    readonly maxEvents: number,
    /** Bytes (bound sizes) at most. */
    readonly maxBytes: number,
  ) {
    super(topic, sub, id, -1);
    this.parts = new Array<Part | undefined>(hint.partitions);
    this.frameAt = frameRoom(topic);
    this.recordsAt = this.frameAt + BATCH_HEADER_BYTES + utf8Length(producerId);
  }

  /**
   * Validates `send()`'s event and writes its record at the end of its
   * partition's batch, without counting it (`commit` does). Returns its
   * bound size, or UNROUTED / PART_FULL with nothing written. Throws what
   * `Chunk.write` throws, in its order.
   */
  writeRouted(event: SendEvent, now: number, maxEventBytes: number): number {
    const key = eventKey(event);
    const headers = headerPairs(event.headers);
    let text: string | undefined;
    let value: Uint8Array | null = null;
    let enc = 0;
    let valueBytes: number;
    if (isJsonText(event)) {
      text = jsonValueText(event.value, key, headers);
      // The exact length only when it may be too large (3 bytes per UTF-16 unit at most).
      if (3 * text.length > LIMITS.maxValueBytes) {
        const n = utf8Length(text);
        if (n > LIMITS.maxValueBytes) valueTooLarge(n);
        valueBytes = n;
      } else valueBytes = -1;
    } else {
      const encoded = checkedValue(event, key, headers);
      value = encoded.value;
      enc = ENCODING_CODE[encoded.encoding];
      valueBytes = value?.length ?? 0;
    }
    const ts = eventTimestamp(event, now);
    const named = eventPartition(event);
    if (this.count >= this.maxEvents) return PART_FULL;
    let p: number;
    if (named !== undefined) p = named;
    else if (key !== null) p = keyHash(key) % this.hint.partitions;
    else if (this.id <= 0) return UNROUTED;
    else p = this.unkeyed(this.id + this.count);
    if (p >= this.hint.partitions) return PART_FULL;
    const part = (this.parts[p] ??= this.newPart());
    const k = part.count;
    if (k >= this.hint.limits.maxRecords) return PART_FULL;
    const tsd = k === 0 ? 0 : zigzag(ts - part.firstTs);
    const d = uvarintSize(k);
    const deltas = d + d + uvarintSize(tsd);
    const rs = part.pos;
    // The body is written where its tail belongs; its attributes byte, first, then moves before the deltas.
    let b0: number;
    let recLen: number;
    if (text === undefined) {
      const bodyLen = recordBodySize(key, value, headers);
      recLen = bodyLen + deltas;
      const end = rs + uvarintSize(recLen) + recLen;
      if (k > 0 && end - this.frameAt > this.hint.limits.maxBytes) return PART_FULL;
      this.ensure(part, p, end);
      b0 = end - bodyLen;
      writeRecordBody(part.buf, b0, key, value, enc, headers);
    } else {
      const fixed = recordBodySize(key, null, headers);
      const most = fixed + 5 + 3 * text.length;
      const lenBytes = uvarintSize(most + deltas);
      this.ensure(part, p, rs + lenBytes + deltas + most);
      b0 = rs + lenBytes + deltas;
      const written = writeTextRecordBodyAt(part.buf, b0, key, text, ENCODING_CODE.json, headers, LIMITS.maxValueBytes);
      if (written < 0) valueTooLarge(utf8Length(text));
      valueBytes = written;
      const bodyLen = fixed + uvarintSize(written) + written;
      recLen = bodyLen + deltas;
      const actual = uvarintSize(recLen);
      if (actual < lenBytes) {
        part.buf.copyWithin(b0 - (lenBytes - actual), b0, b0 + bodyLen);
        b0 -= lenBytes - actual;
      }
      if (k > 0 && b0 + bodyLen - this.frameAt > this.hint.limits.maxBytes) return PART_FULL;
    }
    writeRecordHead(part.buf, rs, recLen, b0, k, tsd);
    const bodyEnd = rs + uvarintSize(recLen) + recLen;
    const bytes = boundBytes(key, valueBytes, headers);
    checkFitsFrame(bytes);
    if (bytes > maxEventBytes) throw new ClientError('OUTBOX_FULL', `event of ${bytes} bytes exceeds the outbox's maxOutboxBytes (${maxEventBytes})`);
    if (this.bytes + bytes > this.maxBytes && this.count > 0) return PART_FULL;
    this.pendP = p;
    this.pendEnd = bodyEnd;
    this.pendTs = ts;
    this.pendNamed = named === undefined ? 0 : 1;
    return bytes;
  }

  /** Counts the event `writeRouted` wrote last. */
  override commit(bytes: number): void {
    const part = this.parts[this.pendP]!;
    const k = part.count;
    if (k === part.idx.length) growPart(part);
    if (k === 0) part.firstTs = part.maxTs = this.pendTs;
    else if (this.pendTs > part.maxTs) part.maxTs = this.pendTs;
    part.idx[k] = this.count;
    part.sizes[k] = bytes;
    part.named[k] = this.pendNamed;
    part.pos = this.pendEnd;
    part.count = k + 1;
    super.commit(bytes);
  }

  /** The partition of unkeyed event `id` (outbox-segment.ts's `partitionOf`), found once per run of ids. */
  private unkeyed(id: number): number {
    const run = Math.floor(id / 1024);
    if (run !== this.unkeyedRun) {
      this.unkeyedP = partitionForUnkeyed(this.producerId, id, this.hint.partitions);
      this.unkeyedRun = run;
    }
    return this.unkeyedP;
  }

  /** Remembers each partition's place, for `rollback` (a call that leaves none of its events in). */
  mark(): void {
    const n = this.parts.length;
    const m = (this.marks ??= new Float64Array(3 * n));
    for (let p = 0; p < n; p++) {
      const part = this.parts[p];
      m[3 * p] = part ? part.count : 0;
      m[3 * p + 1] = part ? part.pos : this.recordsAt;
      m[3 * p + 2] = part ? part.maxTs : 0;
    }
  }

  /** Puts each partition back where `mark` found it (the caller restores count, live and bytes). */
  rollback(): void {
    const m = this.marks;
    if (!m) return;
    for (let p = 0; p < this.parts.length; p++) {
      const part = this.parts[p];
      if (!part) continue;
      part.count = m[3 * p];
      part.pos = m[3 * p + 1];
      part.maxTs = m[3 * p + 2];
    }
  }

  private newPart(): Part {
    const n = 256;
    // As large as the last batch sealed (the pool rounds up to a power of two): a burst's batches are alike, and growing one copies what it holds.
    return {
      buf: takeBatchBuffer(Math.max(this.recordsAt + 16 * 1024, lastPartBytes)),
      pos: this.recordsAt,
      count: 0,
      firstTs: 0,
      maxTs: 0,
      idx: new Int32Array(n),
      sizes: new Uint32Array(n),
      named: new Uint8Array(n),
    };
  }

  /** Grows part p's buffer to hold `size` bytes, keeping what it holds. */
  private ensure(part: Part, p: number, size: number): void {
    if (size <= part.buf.length) return;
    const next = takeBatchBuffer(Math.max(size, part.buf.length * 2));
    next.set(part.buf.subarray(0, part.pos));
    giveBatchBuffer(part.buf);
    part.buf = next;
    this.parts[p] = part;
  }

  /**
   * Seals the chunk as written: per partition one batch, its header and CRC
   * written, sequences from `next` (advanced). Undefined when the chunk was
   * written for another partition count or larger batches: `reroute` then.
   */
  sealRouted(partitions: number, next: number[], limits: SealLimits, crc: Crc32c): Segment[] | undefined {
    if (partitions !== this.hint.partitions || limits.maxRecords < this.hint.limits.maxRecords || limits.maxBytes < this.hint.limits.maxBytes) return undefined;
    const out: Segment[] = [];
    const pidLen = this.recordsAt - this.frameAt - BATCH_HEADER_BYTES;
    for (let p = 0; p < partitions; p++) {
      const part = this.parts[p];
      if (!part || part.count === 0) continue;
      const count = part.count;
      const seq = next[p] ?? 0;
      const batch = part.buf.subarray(this.frameAt, part.pos);
      const total = batch.length;
      lastPartBytes = Math.min(part.pos, LAST_PART_MAX);
      writeBatchHeader(
        batch,
        { total, count, lastOffsetDelta: count - 1, firstTimestamp: part.firstTs, maxTimestamp: part.maxTs, lastSequenceDelta: count - 1, baseSequence: seq, baseOffset: 0, appendTime: -1 },
        this.producerId,
        pidLen,
      );
      writeUint32(batch, O_CRC, crc(batch, CRC_START, total));
      const ids = new Float64Array(count);
      let bytes = 0;
      for (let k = 0; k < count; k++) {
        ids[k] = this.id + part.idx[k];
        bytes += part.sizes[k];
      }
      out.push({ kind: 'segment', topic: this.topic, sub: this.sub, p, seq, count, bytes, ids, sizes: part.sizes.subarray(0, count), batch, chunk: this, room: this.frameAt, pooled: true });
      next[p] = seq + count;
      this.parts[p] = undefined;
    }
    out.sort((a, b) => a.ids[0] - b.ids[0]);
    return out;
  }

  /**
   * The chunk's events read back into a plain chunk (same ids) sealed with
   * `partitions` and `limits`, its segments pointing at this chunk.
   */
  reroute(partitions: number, next: number[], limits: SealLimits, crc: Crc32c): Segment[] {
    const plain = new Chunk(this.topic, this.sub, this.id);
    for (const e of this.events()) plain.add(e);
    const segs = sealChunk(plain, partitions, next, this.producerId, limits, crc);
    for (const s of segs) s.chunk = this;
    plain.dropBodies();
    this.release();
    return segs;
  }

  /** The chunk's events as single, unassigned events (p = -1, seq = -1), in id order. */
  override events(): OutboxEvent[] {
    const out = new Array<OutboxEvent>(this.count);
    const pidLen = this.recordsAt - this.frameAt - BATCH_HEADER_BYTES;
    for (let p = 0; p < this.parts.length; p++) {
      const part = this.parts[p];
      if (!part || part.count === 0) continue;
      const batch = part.buf.subarray(this.frameAt, part.pos);
      const count = part.count;
      writeBatchHeader(
        batch,
        {
          total: batch.length,
          count,
          lastOffsetDelta: count - 1,
          firstTimestamp: part.firstTs,
          maxTimestamp: part.maxTs,
          lastSequenceDelta: count - 1,
          baseSequence: 0,
          baseOffset: 0,
          appendTime: -1,
        },
        this.producerId,
        pidLen,
      );
      // A copy: the records outlive the part's buffer (failed list, a plain chunk).
      const recs = decodeBatchTrusted(batch.slice());
      for (let k = 0; k < count; k++) {
        const r = recs[k];
        const rec: WireRecord = { v: r.value, ts: r.timestamp };
        if (r.key !== null) rec.k = r.key;
        const e = ENCODING_CODE[r.encoding];
        if (e !== 0) rec.e = e;
        if (r.headers.length) rec.h = r.headers;
        if (part.named[k]) rec.p = p;
        const i = part.idx[k];
        out[i] = { id: this.id + i, topic: this.topic, p: -1, seq: -1, sub: this.sub, rec, bytes: part.sizes[k] };
      }
    }
    return out;
  }

  /** The record of event i (the failed list): read back from its batch. */
  override record(i: number): WireRecord {
    return this.events()[i].rec;
  }

  /** Hands the parts' buffers back (a chunk dropped before it was sealed). */
  release(): void {
    for (let p = 0; p < this.parts.length; p++) {
      const part = this.parts[p];
      if (part) giveBatchBuffer(part.buf);
      this.parts[p] = undefined;
    }
  }
}

/** A record's head before its body's tail: its length, the body's attributes byte (at b0, moved), offset and sequence deltas (both k), timestamp delta. */
function writeRecordHead(buf: Uint8Array, rs: number, recLen: number, b0: number, k: number, tsd: number): void {
  const attr = buf[b0];
  let w = writeUvarint(buf, rs, recLen);
  buf[w++] = attr;
  w = writeUvarint(buf, w, k);
  w = writeUvarint(buf, w, k);
  writeUvarint(buf, w, tsd);
}

function growPart(part: Part): void {
  const n = part.idx.length * 2;
  const idx = new Int32Array(n);
  idx.set(part.idx);
  const sizes = new Uint32Array(n);
  sizes.set(part.sizes);
  const named = new Uint8Array(n);
  named.set(part.named);
  part.idx = idx;
  part.sizes = sizes;
  part.named = named;
}

export function isRouted(c: Chunk): c is RoutedChunk {
  return c instanceof RoutedChunk;
}
