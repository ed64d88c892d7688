/**
 * The file outbox's segments (outbox-segment.ts's `SegmentStore`, as the
 * memory outbox has them): the drain reads the journaled events as chunks,
 * assigns a chunk at once into record batches per partition, and removes
 * acked batches whole, with no object per event on the way.
 *
 * - `readChunks` takes the lowest events out of the store's `EventLog`: a
 *   journal group of send() calls is read straight from its bytes into a
 *   chunk's columns (`AppendCursor.nextRaw`: its record bodies copied, its
 *   key hashed from the body); events held as objects (replayed from the
 *   journal, or appended through the group commit) are added one by one.
 *   Events the journal already assigned (a crash or a cut mid-drain) form a
 *   chunk that is sealed already: its `sealed` list holds them as single
 *   events, which the drain sends under their partition and sequence.
 * - `sealChunk` encodes the chunk's batches (outbox-segment.ts `sealChunk`,
 *   sequences from the journal's counters) and journals the assignment (the
 *   usual assign entry: ids, partitions, sequences) before it resolves: the
 *   drain sends a batch only once its numbering is on disk, so a resend after
 *   any crash carries the same sequences (the hub answers it as a duplicate).
 * - `removeItems` journals one remove entry per group of acks (ids as
 *   deltas: one or two bytes per event) and then drops the segments whole,
 *   handing their batch buffers back to the pool.
 *
 * The journal's format is unchanged, so recovery is the journal replay.
 */
import { type Crc32c, readUvarint, type VarintRead } from '../protocol/index.ts';
import { giveBatchBuffer } from './outbox-batch-pool.ts';
import type { Group, Write } from './outbox-file-io.ts';
import { encodeAppend, encodeAssign, encodeRemove, type AppendCursor, type Entry, type RawEvent } from './outbox-journal.ts';
import type { EventLog } from './outbox-log.ts';
import { CHUNK_MAX_EVENTS, Chunk, chunkHolding, chunkIndexAfter, isSegment, sealChunk, segmentEvents, splitSealedSegment, type SealLimits, type Segment, type SegmentStore } from './outbox-segment.ts';
import { addSkips, failedEvent, type FailedEvent, type OutboxEvent, type OutboxStats } from './outbox.ts';
import type { WireRecord } from '../protocol/index.ts';

/** What the segments need of their FileOutboxStore (its fields as they are now). */
export interface FileSegmentsHost {
  log(): EventLog;
  producerId(): string;
  seqs(): Record<string, number>;
  stats(): OutboxStats;
  failedList(): FailedEvent[];
  skips(): Record<string, number[]>;
  write<T>(make: (g: Group) => Write<T>): Promise<T>;
  crc(): Crc32c;
  /** A CBOR entry framed for the journal. */
  cborBytes(entry: Entry): Uint8Array;
}

const EMPTY = new Uint8Array(0);
/** Events one assign entry seals at most (about the drain's read-ahead). */
const SEAL_MAX_EVENTS = 40_000;

export class FileSegments implements SegmentStore {
  /** Chunks taken out of the log, in id order (every id below the log's). */
  private chunks: Chunk[] = [];
  private readonly raw: RawEvent = { id: 0, p2: 0, seq: 0, bytes: 0, ts: 0, topic: '', sub: '', explicit: 0, at: 0, len: 0 };
  private readonly rec: WireRecord & { k: Uint8Array | null } = { v: null, ts: 0, p: undefined, k: null };
  private readonly entry: { topic: string; sub: string; rec: WireRecord; bytes: number; body: Uint8Array } = { topic: '', sub: '', rec: this.rec, bytes: 0, body: EMPTY };
  private readonly vr: VarintRead = { value: 0, pos: 0 };
  private bodyHint = 0;
  /** Chunks whose assignment is on its way to disk, and its write. */
  private readonly sealing = new Map<Chunk, Promise<void>>();

  constructor(private readonly h: FileSegmentsHost) {}

  readChunks(after: Chunk | undefined, maxEvents: number): Chunk[] {
    const chunks = this.chunks;
    let i = chunkIndexAfter(chunks, after);
    const out: Chunk[] = [];
    let n = 0;
    for (;;) {
      for (; i < chunks.length && n < maxEvents; i++) {
        out.push(chunks[i]);
        n += chunks[i].live;
      }
      if (n >= maxEvents || !this.take(maxEvents - n)) return out;
    }
  }

  /** Moves events from the log into new chunks (about `want` of them); false when the log is empty. */
  private take(want: number): boolean {
    const front = this.h.log().takeFront(Math.max(want, 1));
    if (!front) return false;
    if ('packed' in front) this.fromPacked(front.packed.cur, front.packed.lastId);
    else this.fromObjects(front.objects);
    return true;
  }

  /** A journal group's events, read from its bytes into chunks (no object per event). */
  private fromPacked(cur: AppendCursor, lastId: number): void {
    const o = this.raw;
    const b = cur.bytes;
    const rec = this.rec;
    const entry = this.entry;
    const vr = this.vr;
    let c: Chunk | undefined;
    while (cur.left > 0) {
      cur.nextRaw(o);
      if (o.p2 !== 1) throw new Error(`outbox journal group holds an assigned event (${o.id})`);
      if (!c || c.count >= CHUNK_MAX_EVENTS || o.topic !== c.topic || o.sub !== c.sub || o.id !== c.id + c.count) {
        if (c) this.push(c);
        c = new Chunk(o.topic, o.sub, o.id, this.bodyHint || (lastId - o.id + 1) * (o.len + 8));
      }
      // The route: the named partition, else the key's bytes (hashed as partitionForKey does), else unkeyed.
      rec.ts = o.ts;
      rec.p = o.explicit ? o.explicit - 1 : undefined;
      const attr = b[o.at];
      if ((attr >> 3) & 3 && o.len > 1) {
        readUvarint(b, o.at + 1, o.at + o.len, vr);
        rec.k = b.subarray(vr.pos, vr.pos + vr.value);
      } else rec.k = null;
      entry.body = b.subarray(o.at, o.at + o.len);
      entry.bytes = o.bytes;
      c.add(entry as unknown as Parameters<Chunk['add']>[0]);
    }
    if (c) this.push(c);
    rec.k = null;
    entry.body = EMPTY;
  }

  /** Events held as objects: unassigned runs of consecutive ids into chunks, assigned ones into sealed chunks. */
  private fromObjects(events: OutboxEvent[]): void {
    let c: Chunk | undefined;
    let assigned: OutboxEvent[] = [];
    for (const e of events) {
      const isAssigned = e.p !== undefined && e.p >= 0;
      const joins = c && e.topic === c.topic && e.sub === c.sub && (c.sealed ? isAssigned : !isAssigned && e.id === c.id + c.count && c.count < CHUNK_MAX_EVENTS);
      if (!joins) {
        if (c) this.push(c);
        c = new Chunk(e.topic, e.sub, e.id, isAssigned ? -1 : 0);
        if (isAssigned) c.sealed = assigned = [];
      }
      if (isAssigned) {
        assigned.push(e);
        c!.count = e.id - c!.id + 1;
        c!.bytes += e.bytes;
      } else c!.add(e);
    }
    if (c) this.push(c);
  }

  private push(c: Chunk): void {
    c.live = c.sealed ? c.sealed.length : c.count;
    if (!c.sealed && c.count >= CHUNK_MAX_EVENTS) this.bodyHint = c.bodyBytes;
    this.chunks.push(c);
  }

  /**
   * Seals `chunk` and the unsealed chunks of its topic and subject read
   * after it (up to SEAL_MAX_EVENTS), journaled in one assign entry: one
   * fdatasync for the drain's whole read-ahead of a topic, not one per chunk.
   * The drain finds the later ones sealed and hands their segments to the
   * lanes as they are.
   */
  sealChunk(chunk: Chunk, partitions: number, limits: SealLimits, crc: Crc32c): Promise<void> | undefined {
    if (chunk.sealed || chunk.live === 0) return undefined;
    // Being sealed by an earlier call (a session before, or with an earlier chunk): done when that is.
    const pending = this.sealing.get(chunk);
    if (pending) return pending;
    const group = [chunk];
    let n = chunk.live;
    for (let i = this.chunks.indexOf(chunk) + 1; i < this.chunks.length && n < SEAL_MAX_EVENTS; i++) {
      const c = this.chunks[i];
      if (c.topic !== chunk.topic) continue;
      // Another subject's events wait for its token, and so do this topic's later ones (per-key order).
      if (c.sub !== chunk.sub) break;
      if (c.sealed || c.live === 0 || this.sealing.has(c)) continue;
      group.push(c);
      n += c.live;
    }
    const seqs = this.h.seqs();
    const keys: string[] = [];
    const next: number[] = [];
    for (let p = 0; p < partitions; p++) next.push(seqs[(keys[p] = `${chunk.topic}/${p}`)] ?? 0);
    const before = next.slice();
    const segs: Segment[] = [];
    // Numbered now (a later seal numbers on from here), but `sealed` only once on disk: nothing goes out before.
    const made = group.map((c) => sealChunk(c, partitions, next, this.h.producerId(), limits, crc));
    for (const list of made) for (const s of list) segs.push(s);
    for (let p = 0; p < partitions; p++) if (next[p] !== before[p]) seqs[keys[p]] = next[p];
    const ids: number[] = [];
    const ps: number[] = [];
    const ss: number[] = [];
    for (const s of segs) {
      for (let k = 0; k < s.count; k++) {
        ids.push(s.ids[k]);
        ps.push(s.p);
        ss.push(s.seq + k);
      }
    }
    const done = this.h
      .write(() => ({ bytes: encodeAssign(ids, ps, ss, this.h.crc()), result: () => undefined }))
      .then(
        () => {
          group.forEach((c, i) => {
            c.sealed = made[i];
            c.dropBodies();
          });
        },
        (err: unknown) => {
          // Not on disk: undone (a later seal numbers these events again).
          for (let p = 0; p < partitions; p++) if (seqs[keys[p]] === next[p]) seqs[keys[p]] = before[p];
          for (const s of segs) release(s);
          throw err;
        },
      )
      .finally(() => {
        for (const c of group) this.sealing.delete(c);
      });
    for (const c of group) this.sealing.set(c, done);
    return done;
  }

  splitSegment(seg: Segment): OutboxEvent[] {
    return splitSealedSegment(seg);
  }

  /** The chunk holding id, or undefined. */
  private chunkOf(id: number): Chunk | undefined {
    return chunkHolding(this.chunks, id);
  }

  /** Where an item is in its sealed chunk's list, if it is there. */
  private find(item: Segment | OutboxEvent): { chunk: Chunk; at: number } | undefined {
    const chunk = isSegment(item) ? item.chunk : this.chunkOf(item.id);
    const at = chunk?.sealed ? chunk.sealed.indexOf(item) : -1;
    return at >= 0 ? { chunk: chunk!, at } : undefined;
  }

  /** Takes an item out of its sealed chunk (once its removal is on disk); false when it was not there. */
  private takeOut(item: Segment | OutboxEvent): boolean {
    const f = this.find(item);
    if (!f) return false;
    f.chunk.sealed!.splice(f.at, 1);
    const n = isSegment(item) ? item.count : 1;
    f.chunk.live -= n;
    const st = this.h.stats();
    st.events -= n;
    st.bytes -= item.bytes;
    if (f.chunk.live === 0) this.drop(f.chunk);
    if (isSegment(item)) release(item);
    return true;
  }

  private drop(chunk: Chunk): void {
    const at = this.chunks.indexOf(chunk);
    if (at >= 0) this.chunks.splice(at, 1);
  }

  /** Ids of the items still held (for a journal entry). */
  private idsOf(items: ReadonlyArray<Segment | OutboxEvent>): number[] {
    const ids: number[] = [];
    for (const it of items) {
      if (!this.find(it)) continue;
      if (isSegment(it)) for (let k = 0; k < it.count; k++) ids.push(it.ids[k]);
      else ids.push(it.id);
    }
    return ids;
  }

  removeItems(items: Array<Segment | OutboxEvent>): Promise<void> {
    return this.h.write(() => {
      const ids = this.idsOf(items);
      return {
        bytes: ids.length ? encodeRemove(ids, this.h.crc()) : null,
        apply: () => {
          for (const it of items) this.takeOut(it);
        },
        result: () => undefined,
      };
    });
  }

  failItems(items: Array<Chunk | OutboxEvent>, code: string, message: string): Promise<void> {
    return this.h.write(() => {
      const ids: number[] = [];
      const chunks: Chunk[] = [];
      const events: OutboxEvent[] = [];
      for (const it of items) {
        if (it instanceof Chunk) {
          // An unassigned chunk (its topic refused for good): every event of it, none took a sequence.
          if (it.sealed || this.sealing.has(it) || !this.chunks.includes(it)) continue;
          chunks.push(it);
          for (let i = 0; i < it.count; i++) ids.push(it.id + i);
        } else if (this.find(it)) {
          events.push(it);
          ids.push(it.id);
        }
      }
      if (!ids.length) return { bytes: null, result: () => undefined };
      const at = Date.now();
      return {
        bytes: this.h.cborBytes({ o: 'f', ids, code, message, at }),
        apply: () => {
          const failed = this.h.failedList();
          const st = this.h.stats();
          for (const c of chunks) {
            for (const e of c.events()) failed.push(failedEvent(e, code, message, at));
            st.events -= c.live;
            st.bytes -= c.bytes;
            c.live = 0;
            this.drop(c);
          }
          const present = events.filter((e) => this.takeOut(e));
          for (const e of present) failed.push(failedEvent(e, code, message, at));
          addSkips(this.h.skips(), present);
        },
        result: () => undefined,
      };
    });
  }

  /** Live events in the chunks with id <= maxId. */
  countThrough(maxId: number): number {
    let n = 0;
    for (const c of this.chunks) {
      if (c.id > maxId) break;
      if (c.lastId <= maxId) n += c.live;
      else if (!c.sealed) n += maxId - c.id + 1;
      else for (const it of c.sealed) n += isSegment(it) ? countIds(it.ids, maxId) : it.id <= maxId ? 1 : 0;
    }
    return n;
  }

  /** The chunks' events as append entries for a snapshot (assigned ones with their partition and sequence), in id order. */
  snapshotEntries(crc: Crc32c): Uint8Array[] {
    const out: Uint8Array[] = [];
    for (const c of this.chunks) {
      if (c.live === 0) continue;
      let events: OutboxEvent[];
      if (!c.sealed) events = c.events();
      else {
        events = [];
        for (const it of c.sealed) {
          if (isSegment(it)) for (const e of segmentEvents(it)) events.push(e);
          else events.push(it);
        }
        events.sort((a, b) => a.id - b.id);
      }
      out.push(encodeAppend(events, crc));
    }
    return out;
  }
}

function release(s: Segment): void {
  if (!s.pooled) return;
  s.pooled = false;
  giveBatchBuffer(s.batch);
  s.batch = EMPTY;
}

function countIds(ids: Float64Array, maxId: number): number {
  let n = 0;
  for (const id of ids) if (id <= maxId) n++;
  return n;
}
