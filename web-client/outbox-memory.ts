/**
 * An outbox in memory: survives a client's close and re-creation within the
 * process (kept per name), not the process. For tests, short-lived scripts
 * and Node services that accept losing unsent events on a crash.
 *
 * Events are held as segments (outbox-segment.ts): appended into chunks of
 * record bodies, assigned a chunk at a time into ready-to-send batches, and
 * removed a batch at a time. No object per event stays in the outbox: those
 * were a quarter of a busy producer's CPU, in the garbage collector.
 */
import {
  addSkips,
  failedEvent,
  assignIds,
  newProducerId,
  type FailedEvent,
  type NewOutboxEvent,
  type OutboxBounds,
  type OutboxEvent,
  type OutboxStats,
  type OutboxStore,
  type Positions,
} from './outbox.ts';
import { CHUNK_MAX_EVENTS, Chunk, chunkHolding, chunkIndexAfter, isSegment, sealChunk, splitSealedSegment, type SealLimits, type Segment, type SegmentStore } from './outbox-segment.ts';
import { giveBatchBuffer } from './outbox-batch-pool.ts';
import { isRouted, PART_FULL, RoutedChunk, UNROUTED, type RouteHint } from './outbox-routed-chunk.ts';
import { assertTopicName, type Crc32c } from '../protocol/index.ts';
import type { SendEvent } from './event-input.ts';

interface MemoryState {
  producerId: string;
  /** Live chunks in id order; a chunk leaves once none of its events is left. */
  chunks: Chunk[];
  failed: FailedEvent[];
  /** topic → per partition, the next sequence. */
  seqs: Map<string, number[]>;
  stats: OutboxStats;
  positions: Map<string, Positions>;
  skips: Record<string, number[]>;
  /** topic → the partition count and batch limits its last chunk was sealed with (routed staging writes for them). */
  hints: Map<string, RouteHint>;
}

const states = new Map<string, MemoryState>();
const EMPTY = new Uint8Array(0);

/**
 * Events of a sendMany that did not fit yet (`MemoryOutboxStore.stageEvents`):
 * validated and encoded once, into chunks that are not in the outbox and not
 * counted; `appendStaged` moves them in, in order, as room comes.
 */
export interface StagedEvents {
  readonly topic: string;
  readonly sub: string;
  chunks: Chunk[];
  /** Index of the next event to move in, in chunks[0]. */
  at: number;
  /** Events not moved in yet. */
  left: number;
  /** The chunks are RoutedChunks, each moved in whole. */
  routed?: boolean;
}

/** Routed staging only where a chunk may hold at least this many events (a quarter of the outbox's bound). */
const ROUTED_MIN_EVENTS = 256;

/** Bodies a staging chunk starts with per event (it grows if they are larger). */
const STAGED_BODY_GUESS = 128;

export class MemoryOutboxStore implements OutboxStore, SegmentStore {
  private s: MemoryState;
  /** The topic name last checked, so that a burst to one topic checks it once. */
  private lastTopic = '';
  readonly segments = this;

  constructor(readonly name = 'default') {
    let s = states.get(name);
    if (!s) {
      s = { producerId: newProducerId(), chunks: [], failed: [], seqs: new Map(), stats: { events: 0, bytes: 0, lastId: 0 }, positions: new Map(), skips: {}, hints: new Map() };
      states.set(name, s);
    }
    this.s = s;
  }

  async open(): Promise<{ producerId: string }> {
    return { producerId: this.s.producerId };
  }

  async append(entries: NewOutboxEvent[], bounds: OutboxBounds): Promise<Array<OutboxEvent | null>> {
    const out = assignIds(entries, bounds, this.s.stats, true);
    const chunks = this.s.chunks;
    let open = chunks[chunks.length - 1];
    for (const e of out) {
      if (!e) break;
      // Events join the open chunk of their topic and subject; the chunk's ids stay dense.
      if (!open || open.sealed || open.routed || open.topic !== e.topic || open.sub !== e.sub || open.count >= CHUNK_MAX_EVENTS || open.lastId + 1 !== e.id) {
        open = new Chunk(e.topic, e.sub, e.id);
        chunks.push(open);
      }
      open.add(e);
      open.live++;
    }
    return out;
  }

  appendEvents(topic: string, sub: string, events: ArrayLike<SendEvent>, from: number, to: number, now: number, bounds: OutboxBounds, rest?: (n: number) => void): number {
    if (topic !== this.lastTopic) {
      assertTopicName(topic);
      this.lastTopic = topic;
    }
    const chunks = this.s.chunks;
    const stats = this.s.stats;
    // Where the topic's partition count and batch limits are known, the open chunk is a routed one: each record written once, into its batch.
    const hint = this.s.hints.get(topic);
    // What to restore when an event is invalid: nothing of this call stays in.
    const chunksBefore = chunks.length;
    const last = chunks[chunksBefore - 1];
    const lastCount = last?.count ?? 0;
    const lastLive = last?.live ?? 0;
    const lastBytes = last?.bytes ?? 0;
    if (last && isRouted(last) && !last.sealed) last.mark();
    const { events: eventsBefore, bytes: bytesBefore, lastId: lastIdBefore } = stats;
    let open = last;
    let i = from;
    try {
      for (; i < to; i++) {
        if (
          !open ||
          open.sealed ||
          open.topic !== topic ||
          open.sub !== sub ||
          open.count >= CHUNK_MAX_EVENTS ||
          open.lastId !== stats.lastId ||
          (hint ? !isRouted(open) || open.hint !== hint : open.routed)
        ) {
          open = this.openChunk(topic, sub, hint, open);
        }
        let bytes: number;
        if (isRouted(open)) {
          bytes = open.writeRouted(events[i], now, bounds.maxBytes);
          // A full partition batch: the next chunk takes the event (a plain one if even an empty routed chunk cannot: a partition outside the count).
          if (bytes === PART_FULL && open.count > 0) {
            const next = this.openChunk(topic, sub, hint, open) as RoutedChunk;
            open = next;
            bytes = next.writeRouted(events[i], now, bounds.maxBytes);
          }
          if (bytes === PART_FULL) {
            this.dropEmpty(chunksBefore);
            open = new Chunk(topic, sub, stats.lastId + 1);
            chunks.push(open);
            bytes = open.write(events[i], now, bounds.maxBytes);
          }
        } else bytes = open.write(events[i], now, bounds.maxBytes);
        if (stats.events + 1 > bounds.maxEvents || stats.bytes + bytes > bounds.maxBytes) break;
        open.commit(bytes);
        stats.events += 1;
        stats.bytes += bytes;
        stats.lastId += 1;
      }
      // A chunk opened for an event that did not fit stays out.
      this.dropEmpty(chunksBefore);
      if (i < to) rest?.(i - from);
    } catch (err) {
      while (chunks.length > chunksBefore) {
        const c = chunks.pop()!;
        if (isRouted(c)) c.release();
      }
      if (last) {
        last.count = lastCount;
        last.live = lastLive;
        last.bytes = lastBytes;
        if (isRouted(last)) last.rollback();
      }
      stats.events = eventsBefore;
      stats.bytes = bytesBefore;
      stats.lastId = lastIdBefore;
      throw err;
    }
    return i - from;
  }

  /** A new open chunk for `appendEvents` (routed when the topic has a hint), ids from the next one. */
  private openChunk(topic: string, sub: string, hint: RouteHint | undefined, prev: Chunk | undefined): Chunk {
    const id = this.s.stats.lastId + 1;
    // Only a full chunk sizes the next: a trickle of sends keeps its chunks small.
    const c = hint ? new RoutedChunk(topic, sub, id, hint, this.s.producerId, CHUNK_MAX_EVENTS, Infinity) : new Chunk(topic, sub, id, prev && prev.count >= CHUNK_MAX_EVENTS ? prev.bodyBytes : 0);
    this.s.chunks.push(c);
    return c;
  }

  /** Takes out the last chunk if this call opened it and it holds nothing. */
  private dropEmpty(chunksBefore: number): void {
    const chunks = this.s.chunks;
    const c = chunks[chunks.length - 1];
    if (chunks.length > chunksBefore && c.count === 0) {
      chunks.pop();
      if (isRouted(c)) c.release();
    }
  }

  /**
   * Validates and encodes `events[from..to)` into staging chunks (not in the
   * outbox, not counted), for `appendStaged` to move in as room comes: each
   * event is checked and written once. Throws what `appendEvents` throws for
   * the first invalid event (nothing staged is kept then).
   */
  stageEvents(topic: string, sub: string, events: ArrayLike<SendEvent>, from: number, to: number, now: number, maxEventBytes: number, bounds?: OutboxBounds): StagedEvents {
    const hint = this.s.hints.get(topic);
    if (hint && bounds) {
      const routed = this.stageRouted(topic, sub, events, from, to, now, maxEventBytes, bounds, hint);
      if (routed) return routed;
    }
    const staged: StagedEvents = { topic, sub, chunks: [], at: 0, left: to - from };
    let c: Chunk | undefined;
    for (let i = from; i < to; i++) {
      if (!c || c.count >= CHUNK_MAX_EVENTS) {
        c = new Chunk(topic, sub, 0, Math.min(to - i, CHUNK_MAX_EVENTS) * STAGED_BODY_GUESS);
        staged.chunks.push(c);
      }
      c.commit(c.write(events[i], now, maxEventBytes));
    }
    return staged;
  }

  /**
   * `stageEvents` into RoutedChunks (each record written once, into its
   * partition's batch), each at most a quarter of the bounds so that it
   * fits whole once the outbox has drained that far. Undefined when an event
   * has neither key nor partition (its partition follows its id).
   */
  private stageRouted(
    topic: string,
    sub: string,
    events: ArrayLike<SendEvent>,
    from: number,
    to: number,
    now: number,
    maxEventBytes: number,
    bounds: OutboxBounds,
    hint: RouteHint,
  ): StagedEvents | undefined {
    const maxEvents = Math.min(CHUNK_MAX_EVENTS, Math.floor(bounds.maxEvents / 4));
    const maxBytes = Math.floor(bounds.maxBytes / 4);
    if (maxEvents < ROUTED_MIN_EVENTS) return undefined;
    const chunks: RoutedChunk[] = [];
    const giveUp = (): undefined => {
      for (const c of chunks) c.release();
      return undefined;
    };
    let c: RoutedChunk | undefined;
    try {
      for (let i = from; i < to;) {
        if (!c) chunks.push((c = new RoutedChunk(topic, sub, 0, hint, this.s.producerId, maxEvents, maxBytes)));
        const r = c.writeRouted(events[i], now, maxEventBytes);
        if (r === UNROUTED || (r === PART_FULL && c.count === 0)) return giveUp();
        if (r === PART_FULL) c = undefined;
        else {
          c.commit(r);
          i++;
        }
      }
    } catch (err) {
      giveUp();
      throw err;
    }
    return { topic, sub, chunks, at: 0, left: to - from, routed: true };
  }

  /**
   * Moves staged events into the outbox, in order, as many as fit `bounds`
   * (a prefix): their bodies and columns copied a run at a time into the open
   * chunk, ids the next ones. Returns how many went in.
   */
  appendStaged(staged: StagedEvents, bounds: OutboxBounds): number {
    if (staged.topic !== this.lastTopic) {
      assertTopicName(staged.topic);
      this.lastTopic = staged.topic;
    }
    const stats = this.s.stats;
    const chunks = this.s.chunks;
    let moved = 0;
    if (staged.routed) {
      // Whole chunks: ids the next ones, nothing copied.
      while (staged.left > 0) {
        const c = staged.chunks[0];
        if (stats.events + c.count > bounds.maxEvents || stats.bytes + c.bytes > bounds.maxBytes) break;
        c.id = stats.lastId + 1;
        chunks.push(c);
        stats.events += c.count;
        stats.bytes += c.bytes;
        stats.lastId += c.count;
        moved += c.count;
        staged.left -= c.count;
        staged.chunks.shift();
      }
      return moved;
    }
    while (staged.left > 0) {
      const src = staged.chunks[0];
      const a = staged.at;
      // As many of src's next events as the bounds allow.
      let k = 0;
      let bytes = 0;
      const limit = src.count - a;
      while (k < limit && stats.events + k + 1 <= bounds.maxEvents && stats.bytes + bytes + src.sizes[a + k] <= bounds.maxBytes) bytes += src.sizes[a + k++];
      if (k === 0) break;
      let open = chunks[chunks.length - 1];
      const bodyFrom = src.bodyStart(a);
      if (!open || open.sealed || open.routed || open.topic !== staged.topic || open.sub !== staged.sub || open.count >= CHUNK_MAX_EVENTS || open.lastId !== stats.lastId) {
        open = new Chunk(staged.topic, staged.sub, stats.lastId + 1, Math.max(src.bodyBytes, 1));
        chunks.push(open);
      }
      // Within the open chunk's columns and buffer (a chunk made for the run above holds a whole staging chunk).
      k = Math.min(k, open.ends.length - open.count);
      const dst = open.bodyStart(open.count);
      while (k > 0 && dst + src.ends[a + k - 1] - bodyFrom > open.buf.length) k--;
      if (k === 0) {
        open = new Chunk(staged.topic, staged.sub, stats.lastId + 1, Math.max(src.bodyBytes, 1));
        chunks.push(open);
        continue;
      }
      const bodyTo = src.ends[a + k - 1];
      const n = open.count;
      open.buf.set(src.buf.subarray(bodyFrom, bodyTo), dst);
      const shift = dst - bodyFrom;
      for (let j = 0; j < k; j++) open.ends[n + j] = src.ends[a + j] + shift;
      open.ts.set(src.ts.subarray(a, a + k), n);
      open.route.set(src.route.subarray(a, a + k), n);
      open.hash.set(src.hash.subarray(a, a + k), n);
      open.sizes.set(src.sizes.subarray(a, a + k), n);
      bytes = 0;
      for (let j = 0; j < k; j++) bytes += src.sizes[a + j];
      open.count += k;
      open.live += k;
      open.bytes += bytes;
      stats.events += k;
      stats.bytes += bytes;
      stats.lastId += k;
      moved += k;
      staged.left -= k;
      staged.at += k;
      if (staged.at === src.count) {
        // Moved out whole: its buffers go to the next full chunk.
        staged.chunks.shift();
        staged.at = 0;
        src.dropBodies();
      }
    }
    return moved;
  }

  readChunks(after: Chunk | undefined, maxEvents: number): Chunk[] {
    const chunks = this.s.chunks;
    let i = chunkIndexAfter(chunks, after);
    const out: Chunk[] = [];
    let n = 0;
    for (; i < chunks.length && n < maxEvents; i++) {
      out.push(chunks[i]);
      n += chunks[i].live;
    }
    return out;
  }

  sealChunk(chunk: Chunk, partitions: number, limits: SealLimits, crc: Crc32c): void {
    if (chunk.sealed || chunk.live === 0) return;
    let next = this.s.seqs.get(chunk.topic);
    if (!next) this.s.seqs.set(chunk.topic, (next = []));
    if (isRouted(chunk)) chunk.sealed = chunk.sealRouted(partitions, next, limits, crc) ?? chunk.reroute(partitions, next, limits, crc);
    else {
      chunk.sealed = sealChunk(chunk, partitions, next, this.s.producerId, limits, crc);
      chunk.dropBodies();
    }
    const hint = this.s.hints.get(chunk.topic);
    if (!hint || hint.partitions !== partitions || hint.limits.maxRecords !== limits.maxRecords || hint.limits.maxBytes !== limits.maxBytes) {
      this.s.hints.set(chunk.topic, { partitions, limits: { maxRecords: limits.maxRecords, maxBytes: limits.maxBytes } });
    }
  }

  splitSegment(seg: Segment): OutboxEvent[] {
    return splitSealedSegment(seg);
  }

  async assign(): Promise<OutboxEvent[]> {
    throw new Error('the memory outbox assigns whole chunks (sealChunk)');
  }

  async read(): Promise<OutboxEvent[]> {
    throw new Error('the memory outbox is read by chunks (readChunks)');
  }

  /** The live chunk holding id, or undefined. */
  private chunkOf(id: number): Chunk | undefined {
    return chunkHolding(this.s.chunks, id);
  }

  /** Takes an item out of its sealed chunk; false when it was not there. */
  private take(item: Segment | OutboxEvent): boolean {
    const chunk = isSegment(item) ? item.chunk : this.chunkOf(item.id);
    const list = chunk?.sealed;
    if (!chunk || !list) return false;
    const at = list.indexOf(item);
    if (at < 0) return false;
    // In place: the list keeps send order per partition (a re-read after a cut hands it to the lanes as it is).
    list.splice(at, 1);
    const n = isSegment(item) ? item.count : 1;
    chunk.live -= n;
    this.s.stats.events -= n;
    this.s.stats.bytes -= item.bytes;
    if (chunk.live === 0) this.drop(chunk);
    if (isSegment(item) && item.pooled) {
      // Acked and gone (or failed whole): its buffer serves a later batch.
      item.pooled = false;
      giveBatchBuffer(item.batch);
      item.batch = EMPTY;
    }
    return true;
  }

  private drop(chunk: Chunk): void {
    const chunks = this.s.chunks;
    // Acks come mostly in order: the chunk is near the front.
    const at = chunks.indexOf(chunk);
    if (at >= 0) chunks.splice(at, 1);
  }

  async remove(events: OutboxEvent[]): Promise<void> {
    this.removeItems(events);
  }

  removeItems(items: Array<Segment | OutboxEvent>): void {
    for (const it of items) this.take(it);
  }

  async fail(events: OutboxEvent[], code: string, message: string): Promise<void> {
    this.failItems(events, code, message);
  }

  failItems(items: Array<Chunk | OutboxEvent>, code: string, message: string): void {
    const now = Date.now();
    const present: OutboxEvent[] = [];
    for (const it of items) {
      if (it instanceof Chunk) {
        // An unassigned chunk (its topic refused for good): every event of it, none took a sequence.
        if (it.sealed || !this.s.chunks.includes(it)) continue;
        for (const e of it.events()) this.s.failed.push(failedEvent(e, code, message, now));
        this.s.stats.events -= it.live;
        this.s.stats.bytes -= it.bytes;
        it.live = 0;
        this.drop(it);
        if (isRouted(it)) it.release();
      } else if (this.take(it)) present.push(it);
    }
    for (const e of present) this.s.failed.push(failedEvent(e, code, message, now));
    addSkips(this.s.skips, present);
  }

  async skipped(): Promise<Record<string, number[]>> {
    return structuredClone(this.s.skips);
  }

  async failed(): Promise<FailedEvent[]> {
    return [...this.s.failed];
  }

  async clearFailed(): Promise<void> {
    this.s.failed = [];
  }

  async stats(): Promise<OutboxStats> {
    return { ...this.s.stats };
  }

  async countThrough(maxId: number): Promise<number> {
    if (maxId >= this.s.stats.lastId) return this.s.stats.events;
    let n = 0;
    for (const c of this.s.chunks) {
      if (c.id > maxId) break;
      if (c.lastId <= maxId) n += c.live;
      else if (!c.sealed) n += maxId - c.id + 1;
      else for (const it of c.sealed) n += isSegment(it) ? countIds(it.ids, maxId) : it.id <= maxId ? 1 : 0;
    }
    return n;
  }

  async loadPositions(name: string): Promise<Positions | undefined> {
    const p = this.s.positions.get(name);
    return p ? { ...p } : undefined;
  }

  async savePositions(name: string, positions: Positions): Promise<void> {
    this.s.positions.set(name, { ...positions });
  }

  async close(): Promise<void> {}
}

function countIds(ids: Float64Array, maxId: number): number {
  let n = 0;
  for (const id of ids) if (id <= maxId) n++;
  return n;
}
