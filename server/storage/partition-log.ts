/**
 * One partition's log: the single writer (a queue drained by one flush loop
 * that group-commits whatever accumulated during the previous write+fsync),
 * the high watermark, reads, and the stop-and-re-verify cycle after a write
 * or fsync failure.
 *
 * What an ack means (append resolving) per fsync policy:
 *   always    the batch is durable (written through O_DSYNC, durable-log.ts,
 *             or fdatasync'ed): it survives a crash or power loss.
 *   interval  the batch is written to the OS (survives a hub crash); it is
 *             fdatasync'ed within fsyncIntervalMs, and only then readable.
 *   never     the batch is written to the OS; readable at once; a power loss
 *             may take it back.
 */
import fsp from 'node:fs/promises';
import { stampBatch } from '../../protocol/batch.ts';
import { TributaryError } from '../../protocol/errors.ts';
import { compactPartition, type SegmentContents } from './compaction.ts';
import { checkAppended, DurableLog, groupSize, MAX_WRITES_AHEAD, issueGroupWrite, noteGroupWrite, releasePooled, resultOf, type GroupWrite, type Pending } from './durable-log.ts';
import { fsyncDir } from './data-dir.ts';
import type { AppendResult, PartitionOffsets, ReadResult, TopicConfig } from './log-store.ts';
import { partitionOffsetForTime, readPartition } from './partition-reads.ts';
import type { PartitionEnv, PartitionView } from './partition-view.ts';
import { type ProducerStateTable, writeSnapshot } from './producer-state.ts';
import { findDuplicate, findProducerInLog } from './producer-lookup.ts';
import { reverifyTail } from './recovery.ts';
import { segmentsPastRetention } from './retention.ts';
import { OffsetIndex, TimeIndex } from './segment-index.ts';
import { closeActiveFiles, openActiveFiles, Segment } from './segment.ts';
import type { TailCache } from './tail-cache.ts';
import { copyOf } from './write-buffers.ts';

export type { PartitionEnv } from './partition-view.ts';

interface Waiter {
  offset: number;
  resolve: () => void;
  reject: (e: Error) => void;
}

const RECOVER_MIN_MS = 50;
const RECOVER_MAX_MS = 5000;

export type PartitionState = 'ok' | 'failed' | 'closed';

export class PartitionLog implements PartitionView {
  /** Sorted by base offset; the last one is active. */
  private segmentList: Segment[];
  private earliestOffset: number;
  private logEndOffset: number;
  private hw: number;
  /** Byte position of the high watermark in the active segment. */
  private hwPosition: number;
  /** Everything acknowledged so far (>= highWatermark for interval). */
  private ackedEnd: number;
  private ackedPosition: number;
  private status: PartitionState = 'ok';
  private queue: Pending[] = [];
  private flushing: Promise<void> | null = null;
  /** The group whose write is in flight, and those issued behind it, oldest first (fsync "always" only, `writeAhead`). */
  private writing: GroupWrite | null = null;
  private ahead: GroupWrite[] = [];
  /** Batches appended while a write is in flight join one write ahead, issued once the loop turn's I/O is read. */
  private aheadSoon: NodeJS.Immediate | null = null;
  private readonly writeAheadNow = (): void => ((this.aheadSoon = null), this.writeAhead());
  private waiters: Waiter[] = [];
  private lastAppendTime: number;
  private bytesSinceSnapshot = 0;
  private snapshotting: Promise<void> | null = null;
  private syncRequested = false;
  /** fsync "always" writes (durable-log.ts). */
  private readonly durableLog: DurableLog;
  /** The active log may hold unsynced bytes (another policy's writes, a tail kept by recovery): "always" then fdatasyncs once. */
  private unsyncedWrites = true;
  private syncTimer: NodeJS.Timeout | null = null;
  private recoverTimer: NodeJS.Timeout | null = null;
  private recoverDelayMs = RECOVER_MIN_MS;
  /** Retention and compaction hold this so they never overlap on one partition. */
  private cleaning = false;
  /** Compaction: every record below this offset was checked against a map of newer keys. */
  private compactedThrough = -1;
  /** Compaction: when the earliest tombstone kept by the last sweep expires. */
  private tombstoneDeadline = Infinity;

  constructor(
    readonly topic: string,
    readonly partition: number,
    readonly dir: string,
    readonly env: PartitionEnv,
    readonly config: () => TopicConfig,
    readonly producers: ProducerStateTable,
    readonly tail: TailCache,
    segments: Segment[],
  ) {
    this.segmentList = segments;
    const active = segments[segments.length - 1];
    this.earliestOffset = segments[0].baseOffset;
    this.logEndOffset = active.nextOffset;
    this.hw = this.logEndOffset;
    this.hwPosition = active.sizeBytes;
    this.ackedEnd = this.logEndOffset;
    this.ackedPosition = active.sizeBytes;
    this.lastAppendTime = active.maxAppendTime;
    this.durableLog = new DurableLog(env.io);
  }

  get segments(): readonly Segment[] {
    return this.segmentList;
  }
  get earliest(): number {
    return this.earliestOffset;
  }
  get logEnd(): number {
    return this.logEndOffset;
  }
  get highWatermark(): number {
    return this.hw;
  }
  get hwPos(): number {
    return this.hwPosition;
  }
  get ackedPos(): number {
    return this.ackedPosition;
  }
  get state(): PartitionState {
    return this.status;
  }

  get active(): Segment {
    return this.segmentList[this.segmentList.length - 1];
  }

  offsets(): PartitionOffsets {
    let bytes = 0;
    for (const s of this.segmentList) bytes += s.sizeBytes;
    return { earliest: this.earliestOffset, highWatermark: this.hw, logEnd: this.logEndOffset, bytes };
  }

  // ---------------- append ----------------

  /**
   * Appends one producer-encoded batch; resolves once it is acknowledged
   * under the topic's fsync policy. Not an async function: the usual append
   * returns the group commit's own promise (no extra hops after the write).
   * `borrowed` bytes are valid only during this call (a transport frame's): checked where they are, copied once.
   */
  append(b: Uint8Array, borrowed = false): Promise<AppendResult> {
    try {
      return this.appendChecked(b, false, borrowed);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  private appendChecked(b: Uint8Array, lookedUp: boolean, borrowed: boolean): Promise<AppendResult> {
    if (this.status !== 'ok') throw this.unavailable();
    const { count, pid, baseSeq, lastSeq } = checkAppended(b, this.env.crc);
    if (pid) {
      const entry = this.producers.get(pid);
      // Evicted producers fall back to the log (slow path, only after evictions), then the checks run again.
      if (!entry && !lookedUp && this.producers.evictions > 0) return this.lookUpProducer(pid, borrowed ? copyOf(b) : b);
      if (entry && lastSeq <= entry.lastSeq) return this.duplicate(borrowed ? copyOf(b) : b, pid, baseSeq, lastSeq, count);
      if (entry && baseSeq <= entry.lastSeq) {
        throw new TributaryError('BAD_SEQUENCE', `batch sequences ${baseSeq}..${lastSeq} overlap the highest appended ${entry.lastSeq}; split the batch`, { lastSequence: entry.lastSeq });
      }
    }
    return this.enqueue(b, pid, baseSeq, lastSeq, count, borrowed);
  }

  private async lookUpProducer(pid: string, b: Uint8Array): Promise<AppendResult> {
    const found = await findProducerInLog(this, pid);
    if (found && !this.producers.get(pid)) this.producers.seed(pid, found);
    return this.appendChecked(b, true, false);
  }

  /**
   * Stamps the checked batch with its offsets and queues it for the group commit. A `borrowed` one is copied into reused
   * memory released when its write is done or, while readers follow the partition (TailCache.wanted), the tail cache's.
   */
  private enqueue(b: Uint8Array, pid: string, baseSeq: number, lastSeq: number, count: number, borrowed: boolean): Promise<AppendResult> {
    const now = this.env.now();
    const pooled = borrowed && !this.tail.wanted(now) && this.env.writeBuffers.pools(b.length);
    if (borrowed) b = pooled ? this.env.writeBuffers.copy(b) : copyOf(b);
    const appendTime = now > this.lastAppendTime ? now : this.lastAppendTime;
    this.lastAppendTime = appendTime;
    const base = this.logEndOffset;
    const last = base + count - 1;
    this.logEndOffset = last + 1;
    stampBatch(b, 0, base, appendTime, this.env.crc);
    if (pid) this.producers.record(pid, baseSeq, lastSeq, base, last, appendTime);
    if (pooled) this.tail.skip();
    else this.tail.push(b, base, last);
    return new Promise<AppendResult>((resolve, reject) => {
      this.queue.push({ batch: b, base, last, appendTime, pooled, resolve, reject });
      if (!this.flushing) this.flushing = this.flushLoop();
      else if (!this.aheadSoon && this.writing) this.aheadSoon = setImmediate(this.writeAheadNow);
    });
  }

  private unavailable(): TributaryError {
    if (this.status === 'closed') return new TributaryError('SHUTTING_DOWN', `partition ${this.topic}/${this.partition} is closed`);
    return new TributaryError('STORAGE_UNAVAILABLE', `partition ${this.topic}/${this.partition} is re-verifying its log after a write failure`, { topic: this.topic, partition: this.partition });
  }

  /** A retry of batches already appended: the original offsets, once they are durable. */
  private async duplicate(b: Uint8Array, pid: string, firstSeq: number, lastSeq: number, count: number): Promise<AppendResult> {
    const result = await findDuplicate(this, this.producers.get(pid), b, pid, firstSeq, lastSeq, count);
    const lastOffset = Math.max(...result.offsets);
    if (lastOffset >= this.hw) await this.waitDurable(lastOffset);
    return result;
  }

  private waitDurable(offset: number): Promise<void> {
    return new Promise<void>((resolve, reject) => this.waiters.push({ offset, resolve, reject }));
  }

  // ---------------- the writer ----------------

  private async flushLoop(): Promise<void> {
    let group: Pending[] = [];
    try {
      while ((this.queue.length > 0 || this.syncRequested || this.ahead.length > 0) && this.status === 'ok') {
        let w = this.ahead.shift();
        if (!w) {
          if (this.syncRequested) {
            // The interval fsync runs here, in the one writer, so that it never races a roll closing the file.
            this.syncRequested = false;
            await this.syncNow();
            continue;
          }
          const cfg = this.config();
          const firstSize = this.queue[0].batch.length;
          let seg = this.active;
          if (seg.sizeBytes > 0 && (seg.sizeBytes + firstSize > cfg.segmentBytes || (cfg.segmentMs >= 0 && this.env.now() - seg.firstAppendTime >= cfg.segmentMs))) {
            await this.roll();
            seg = this.active;
          }
          const { n, bytes } = groupSize(this.queue, seg.sizeBytes, cfg.segmentBytes);
          const durableFd = cfg.fsync === 'always' && !this.unsyncedWrites ? await this.durableLog.fdFor(seg) : -1;
          w = issueGroupWrite(this.env.io, this.env.writeBuffers, durableFd >= 0 ? durableFd : seg.active!.log, seg, this.queue.splice(0, n), seg.sizeBytes, bytes);
          if (durableFd < 0) w.fd = -1;
        }
        group = w.group;
        this.writing = w;
        this.writeAhead();
        const err = await w.outcome;
        this.writing = null;
        if (err) throw err;
        if (w.startedAt > 0 && w.fd >= 0) noteGroupWrite(w.startedAt);
        const seg = w.seg;
        let pos = w.pos;
        for (const g of group) {
          seg.noteAppended(pos, g.batch.length, g.base, g.last, g.appendTime, this.env.indexIntervalBytes);
          pos += g.batch.length;
        }
        const end = group[group.length - 1].last + 1;
        const cfg = this.config();
        if (w.fd >= 0 || cfg.fsync === 'always') {
          // Through O_DSYNC the group is durable already; else one fdatasync covers it and the unsynced bytes before it.
          // Usually neither is needed: then the group is acked and delivered in the tick its write completed.
          if (w.fd < 0) await Promise.all([this.env.io.fdatasync(seg.active!.log), seg.persistIndexes(this.env.io, false)]);
          else if (seg.indexesDue()) await seg.persistIndexes(this.env.io, false);
          this.unsyncedWrites = false;
          this.acked(end, pos);
          this.advanceHighWatermark(end, pos);
        } else {
          this.unsyncedWrites = true;
          this.acked(end, pos);
          if (cfg.fsync === 'never') this.advanceHighWatermark(end, pos);
          else this.scheduleSync(cfg.fsyncIntervalMs);
          await seg.persistIndexes(this.env.io, false);
        }
        for (const g of group) g.resolve(resultOf(g));
        group = [];
        this.bytesSinceSnapshot += w.bytes;
        if (this.bytesSinceSnapshot >= this.env.snapshotIntervalBytes && cfg.fsync !== 'interval') this.snapshotInBackground();
      }
    } catch (err) {
      // A write issued ahead must land (or fail) before the tail is re-verified, and its appends fail with the rest.
      const ahead = this.ahead;
      this.ahead = [];
      this.writing = null;
      for (const a of ahead) {
        group = group.concat(a.group);
        await a.outcome;
      }
      this.fail(err, group);
    } finally {
      this.flushing = null;
    }
  }

  /**
   * fsync "always": issues the queued batches' O_DSYNC write while earlier
   * groups' are still in flight (at most MAX_WRITES_AHEAD behind the one the
   * loop waits for), at the offset after the last in the same segment,
   * instead of after their completion hop through the event loop (appends
   * run it once per loop turn, so the batches of one turn's frames share one
   * write). A request that arrives while the disk stalls is thus written at once, and done
   * when the stall ends, not one whole write after it. Acks stay in order:
   * the loop completes a group only after the ones before it, so no acked
   * byte lies behind a hole; a crash that leaves a hole leaves unacked bytes
   * after it, which recovery truncates at the first batch that does not
   * verify.
   */
  private writeAhead(): void {
    const first = this.writing;
    if (!first || this.ahead.length >= MAX_WRITES_AHEAD || first.fd < 0 || this.queue.length === 0 || this.syncRequested || this.status !== 'ok') return;
    const prev = this.ahead.length > 0 ? this.ahead[this.ahead.length - 1] : first;
    const cfg = this.config();
    const seg = prev.seg;
    const pos = prev.pos + prev.bytes;
    if (cfg.fsync !== 'always' || seg !== this.active || this.durableLog.openFdFor(seg) !== prev.fd) return;
    if (pos + this.queue[0].batch.length > cfg.segmentBytes || (cfg.segmentMs >= 0 && this.env.now() - seg.firstAppendTime >= cfg.segmentMs)) return;
    const { n, bytes } = groupSize(this.queue, pos, cfg.segmentBytes);
    this.ahead.push(issueGroupWrite(this.env.io, this.env.writeBuffers, prev.fd, seg, this.queue.splice(0, n), pos, bytes));
  }

  /**
   * Snapshots producer state as of the high watermark off the append path
   * (the rows are taken now, the file is written in the background); a
   * failure only means recovery replays a little more of the log.
   */
  private snapshotInBackground(): void {
    if (this.snapshotting) return;
    this.bytesSinceSnapshot = 0;
    this.snapshotting = writeSnapshot(this.dir, this.producers, this.hw)
      .catch((err) => this.env.log.warn({ topic: this.topic, partition: this.partition, err: String(err) }, 'producer snapshot failed'))
      .finally(() => (this.snapshotting = null));
  }

  private acked(end: number, pos: number): void {
    this.ackedEnd = end;
    this.ackedPosition = pos;
  }

  private advanceHighWatermark(hw: number, pos: number): void {
    if (hw <= this.hw && pos === this.hwPosition) return;
    this.hw = Math.max(hw, this.hw);
    this.hwPosition = pos;
    if (this.waiters.length) {
      const still: Waiter[] = [];
      for (const w of this.waiters) w.offset < this.hw ? w.resolve() : still.push(w);
      this.waiters = still;
    }
    this.env.notifyDurable(this.topic, this.partition, this.hw);
  }

  /** fsync "interval": one fdatasync per interval while there is unsynced data. */
  private scheduleSync(intervalMs: number): void {
    if (this.syncTimer) return;
    this.syncTimer = setTimeout(() => {
      this.syncTimer = null;
      this.syncRequested = true;
      if (!this.flushing && this.status === 'ok') this.flushing = this.flushLoop();
    }, intervalMs);
  }

  /** fdatasync the active segment and move the high watermark to what was written before it (writer only). */
  private async syncNow(): Promise<void> {
    if (this.status !== 'ok') return;
    const seg = this.active;
    const end = this.ackedEnd;
    const pos = this.ackedPosition;
    if (end <= this.hw) return;
    await Promise.all([this.env.io.fdatasync(seg.active!.log), seg.persistIndexes(this.env.io)]);
    this.unsyncedWrites = false;
    if (seg === this.active) this.advanceHighWatermark(end, pos);
    if (this.bytesSinceSnapshot >= this.env.snapshotIntervalBytes) this.snapshotInBackground();
  }

  /** Closes the active segment (indexes written, everything fsynced) and starts a new one. */
  private async roll(): Promise<void> {
    const io = this.env.io;
    const old = this.active;
    const files = old.active!;
    old.timeIndex!.append(old.maxAppendTime, old.lastBatchRel());
    await old.persistIndexes(io);
    await Promise.all([io.fdatasync(files.log), io.fdatasync(files.index), io.fdatasync(files.timeIndex)]);
    this.acked(old.nextOffset, old.sizeBytes);
    this.advanceHighWatermark(old.nextOffset, old.sizeBytes);
    const base = old.nextOffset;
    const next = new Segment(this.dir, base, 0, base, -1);
    next.active = await openActiveFiles(io, this.dir, base, 'w+');
    next.index = new OffsetIndex();
    next.timeIndex = new TimeIndex();
    await fsyncDir(this.dir);
    old.active = null;
    await this.durableLog.close();
    this.unsyncedWrites = false;
    this.segmentList = [...this.segmentList, next];
    this.hwPosition = 0;
    this.ackedPosition = 0;
    await closeActiveFiles(io, files);
    this.env.indexCache.touch(old);
    this.bytesSinceSnapshot = 0;
    await writeSnapshot(this.dir, this.producers, base);
  }

  // ---------------- failure and self-repair ----------------

  /** A write or fsync failed: nothing unacknowledged is acknowledged; stop and re-verify. */
  private fail(err: unknown, inFlight: Pending[]): void {
    if (this.status !== 'ok') return;
    this.status = 'failed';
    const code = (err as NodeJS.ErrnoException)?.code ?? 'EIO';
    this.env.log.error({ topic: this.topic, partition: this.partition, code, err: String(err) }, 'partition write failed; re-verifying its tail');
    const e = new TributaryError('STORAGE_UNAVAILABLE', `write to ${this.topic}/${this.partition} failed (${code}); retry later`, { topic: this.topic, partition: this.partition, cause: code });
    releasePooled(this.env.writeBuffers, this.queue); // never written (inFlight's were, and gave theirs back)
    const pending = inFlight.concat(this.queue);
    this.queue = [];
    for (const p of pending) p.reject(e);
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w.reject(e);
    if (this.syncTimer) clearTimeout(this.syncTimer);
    this.syncTimer = null;
    this.scheduleRecover();
  }

  private scheduleRecover(): void {
    this.recoverTimer = setTimeout(() => {
      this.recoverTimer = null;
      void this.recover();
    }, this.recoverDelayMs);
    this.recoverDelayMs = Math.min(this.recoverDelayMs * 2, RECOVER_MAX_MS);
  }

  /** Re-reads the tail from the disk, truncates whatever was never acknowledged (or does not verify), resumes. */
  private async recover(): Promise<void> {
    if (this.status !== 'failed') return;
    try {
      const old = this.active.active!;
      await this.durableLog.close();
      const r = await reverifyTail(this);
      // The old descriptors' page cache cannot be trusted after the failure: serve from the reopened files.
      this.active.active = r.files;
      await closeActiveFiles(this.env.io, old);
      this.env.handles.invalidate(this.active.logFile);
      this.logEndOffset = r.nextOffset;
      this.ackedEnd = r.nextOffset;
      this.ackedPosition = r.sizeBytes;
      if (this.hw > r.nextOffset) {
        this.env.log.error({ topic: this.topic, partition: this.partition, lost: this.hw - r.nextOffset }, 'acknowledged records did not verify after a write failure');
        this.hw = r.nextOffset;
      }
      this.advanceHighWatermark(r.nextOffset, r.sizeBytes);
      this.producers.truncateFrom(r.nextOffset);
      this.tail.truncateFrom(r.nextOffset);
      this.lastAppendTime = Math.max(this.lastAppendTime, this.active.maxAppendTime);
      this.recoverDelayMs = RECOVER_MIN_MS;
      // What the failed writes left was re-read, not synced: the next "always" group syncs with fdatasync.
      this.unsyncedWrites = true;
      this.status = 'ok';
      this.env.log.info({ topic: this.topic, partition: this.partition, logEnd: this.logEndOffset }, 'partition recovered');
    } catch (err) {
      this.env.log.warn({ topic: this.topic, partition: this.partition, err: String(err) }, 'partition still failing; retrying');
      if (this.status === 'failed') this.scheduleRecover();
    }
  }

  // ---------------- cleanup: retention and compaction ----------------

  /**
   * Applies retention, then compaction for `compact` topics, unless the log
   * is failing, closed or already being cleaned (the two never overlap).
   */
  async cleanUp(): Promise<void> {
    if (this.status !== 'ok' || this.cleaning) return;
    this.cleaning = true;
    try {
      const drop = segmentsPastRetention(this);
      if (drop > 0) await this.deleteOldestSegments(drop);
      if (this.config().cleanupPolicy === 'compact') await compactPartition(this);
    } finally {
      this.cleaning = false;
    }
  }

  /** Removes the `n` oldest segments (never the active one) from the log and the disk. */
  async deleteOldestSegments(n: number): Promise<void> {
    const count = Math.min(n, this.segmentList.length - 1);
    if (count <= 0) return;
    // A new array, not splice: reads in flight keep iterating the one they took.
    const gone = this.segmentList.slice(0, count);
    this.segmentList = this.segmentList.slice(count);
    this.earliestOffset = this.segmentList[0].baseOffset;
    for (const seg of gone) {
      this.env.handles.invalidate(seg.logFile);
      this.env.indexCache.forget(seg);
      // The log goes first: an index without its log is swept on start-up.
      await fsp.rm(seg.logFile, { force: true });
      await Promise.all([fsp.rm(seg.indexFile, { force: true }), fsp.rm(seg.timeIndexFile, { force: true })]);
    }
    this.env.log.info({ topic: this.topic, partition: this.partition, segments: count, earliest: this.earliestOffset }, 'retention deleted segments');
  }

  /**
   * Where compaction's key map starts: after what the last pass covered, or
   * 0 once a kept tombstone is due (the map must see it again). -1 when
   * nothing was rolled since the last pass and no tombstone is due.
   */
  compactionStart(now: number): number {
    if (now >= this.tombstoneDeadline) {
      this.tombstoneDeadline = Infinity;
      return 0;
    }
    if (this.compactedThrough === this.active.baseOffset) return -1;
    return Math.max(0, this.compactedThrough);
  }

  /** A compaction pass covered the log below `through`; the earliest tombstone it kept expires at `tombstoneDeadline`. */
  compactionDone(through: number, tombstoneDeadline: number): void {
    this.compactedThrough = through;
    this.tombstoneDeadline = Math.min(this.tombstoneDeadline, tombstoneDeadline);
  }

  /** Replaces a closed segment's log with the compacted file `cleanedFile`, once no read uses the segment. */
  async replaceSegmentFiles(seg: Segment, cleanedFile: string, contents: SegmentContents): Promise<void> {
    let open!: () => void;
    seg.swapping = new Promise<void>((r) => (open = r));
    try {
      while (seg.readers > 0) await new Promise((r) => setTimeout(r, 1));
      await Promise.all([fsp.rm(seg.indexFile, { force: true }), fsp.rm(seg.timeIndexFile, { force: true })]);
      await fsp.rename(cleanedFile, seg.logFile);
      await fsyncDir(seg.dir);
      this.env.handles.invalidate(seg.logFile);
      // The tail cache must not serve the batches this segment no longer holds.
      this.tail.dropBelow(seg.nextOffset);
      seg.sizeBytes = contents.sizeBytes;
      seg.index = contents.index;
      seg.timeIndex = contents.timeIndex;
      seg.lastIndexedPosition = contents.lastIndexedPosition;
      this.env.indexCache.touch(seg);
      await Promise.all([fsp.writeFile(seg.indexFile, contents.index.encode()), fsp.writeFile(seg.timeIndexFile, contents.timeIndex.encode())]);
    } finally {
      seg.swapping = null;
      open();
    }
  }

  // ---------------- reads (partition-reads.ts) ----------------

  read(offset: number, maxBytes: number): Promise<ReadResult> {
    return readPartition(this, offset, maxBytes);
  }

  offsetForTimestamp(ts: number): Promise<number> {
    return partitionOffsetForTime(this, ts);
  }

  // ---------------- lifecycle ----------------

  /** Drains the writer, fsyncs, writes a snapshot and closes the active segment's files. */
  async close(): Promise<void> {
    if (this.status === 'closed') return;
    while (this.flushing) await this.flushing;
    if (this.snapshotting) await this.snapshotting;
    const wasOk = this.status === 'ok';
    this.status = 'closed';
    if (this.syncTimer) clearTimeout(this.syncTimer);
    if (this.recoverTimer) clearTimeout(this.recoverTimer);
    this.syncTimer = this.recoverTimer = null;
    const io = this.env.io;
    const seg = this.active;
    const files = seg.active;
    if (files) {
      try {
        if (wasOk) {
          await seg.persistIndexes(io);
          await Promise.all([io.fdatasync(files.log), io.fdatasync(files.index), io.fdatasync(files.timeIndex)]);
          this.advanceHighWatermark(this.ackedEnd, this.ackedPosition);
          await writeSnapshot(this.dir, this.producers, this.logEndOffset);
        }
      } finally {
        seg.active = null;
        await this.durableLog.close();
        await closeActiveFiles(io, files);
      }
    }
    for (const s of this.segmentList) {
      this.env.handles.invalidate(s.logFile);
      this.env.indexCache.forget(s);
    }
    const e = new TributaryError('SHUTTING_DOWN', 'the log is closing');
    for (const w of this.waiters) w.reject(e);
    this.waiters = [];
    this.tail.clear();
  }
}
