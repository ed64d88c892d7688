/**
 * Log compaction for topics with cleanupPolicy "compact": in closed
 * segments, keep only the newest record of each key (newest across the whole
 * log, the active segment included), and drop a key's tombstone (null value)
 * once it is older than deleteRetentionMs. Offsets never change: rewritten
 * batches keep their base offset and records keep their offset deltas, so
 * gaps appear. Records without a key are kept.
 *
 * Memory is bounded as Kafka's cleaner bounds it: the map of each key's
 * newest offset is built from where the last pass stopped (`compactedThrough`)
 * and holds at most `maxCompactionKeys` keys. When it fills, the pass covers
 * the log only up to that point, the next pass continues from there, and a
 * record is dropped only when the map knows a newer record of its key. A
 * tombstone is dropped only when the map saw it as its key's newest (so the
 * older values it hides are dropped in the same pass, oldest segment first);
 * a pass due to expiring tombstones starts from the beginning of the log.
 *
 * A segment is rewritten to `<base>.log.cleaned`, fdatasync'ed, and renamed
 * over the original while no reader holds the segment (readers wait only for
 * the rename, appends never wait). Its index files are removed before the
 * rename and written after it, so a crash leaves either the old log or the
 * new one with no index (rebuilt on demand), never a mismatched index.
 */
import fsp from 'node:fs/promises';
import { decodeBatchTrusted, encodeBatch, readBatchHeader, readBaseOffset, readAppendTime, readLastOffsetDelta } from '../../protocol/batch.ts';
import type { RecordKey, StoredRecord } from '../../protocol/record.ts';
import type { PartitionView } from './partition-view.ts';
import { indexBatch, OffsetIndex, TimeIndex } from './segment-index.ts';
import { scanLog, type Segment } from './segment.ts';

const WRITE_CHUNK_BYTES = 4 << 20;

/** A compacted segment's new contents, swapped in by the log. */
export interface SegmentContents {
  sizeBytes: number;
  index: OffsetIndex;
  timeIndex: TimeIndex;
  lastIndexedPosition: number;
}

/** The log as compaction sees it: a read-only view, plus the three changes compaction makes through the log. */
export interface CompactableLog extends PartitionView {
  compactionStart(now: number): number;
  compactionDone(through: number, tombstoneDeadline: number): void;
  replaceSegmentFiles(seg: Segment, cleanedFile: string, contents: SegmentContents): Promise<void>;
}

function keyId(k: RecordKey): string | null {
  if (k === null) return null;
  return typeof k === 'string' ? 's' + k : 'b' + Buffer.from(k.buffer, k.byteOffset, k.length).toString('latin1');
}

async function eachRecordBatch(log: PartitionView, seg: Segment, end: number, visit: (b: Uint8Array, p: number, size: number) => void): Promise<void> {
  const h = await log.env.handles.acquire(seg.logFile);
  try {
    await scanLog(log.env.io, h.fd, 0, end, true, (b, p, _pos, size) => {
      visit(b, p, size);
      return true;
    });
  } finally {
    h.release();
  }
}

/** Compacts the closed segments of one partition when there is something new to compact. */
export async function compactPartition(log: CompactableLog): Promise<void> {
  const cfg = log.config();
  const now = log.env.now();
  const active = log.active;
  const closed = log.segments.slice(0, -1);
  if (closed.length === 0) return;
  const from = log.compactionStart(now);
  if (from < 0) return;

  // Pass 1: the newest offset of every key from `from` (where the last pass stopped, or 0 when
  // tombstones are due), up to the high watermark or until the map is full (`mapEnd`: the first
  // offset the map does not cover).
  const latest = new Map<string, number>();
  const hwPos = log.hwPos;
  const maxKeys = log.env.maxCompactionKeys;
  let mapEnd = -1;
  for (const seg of [...closed, active]) {
    if (mapEnd >= 0) break;
    if (seg.nextOffset <= from && seg !== active) continue;
    const end = seg === active ? hwPos : seg.sizeBytes;
    if (end === 0) continue;
    await eachRecordBatch(log, seg, end, (b, p) => {
      if (mapEnd >= 0) return;
      const base = readBaseOffset(b, p);
      if (base + readLastOffsetDelta(b, p) < from) return;
      if (latest.size >= maxKeys) {
        mapEnd = base;
        return;
      }
      for (const r of decodeBatchTrusted(b, p)) {
        const id = keyId(r.key);
        if (id !== null) latest.set(id, r.offset);
      }
    });
  }
  if (mapEnd < 0) mapEnd = log.highWatermark;

  // Pass 2: rewrite each closed segment that loses records.
  let deadline = Infinity;
  for (const seg of closed) {
    if (!log.segments.includes(seg)) continue; // deleted by retention meanwhile
    const d = await rewriteSegment(log, seg, latest, now, cfg.deleteRetentionMs);
    if (d < deadline) deadline = d;
  }
  // The earliest expiry of any tombstone kept in this sweep (several passes when the map is bounded).
  log.compactionDone(Math.min(mapEnd, active.baseOffset), deadline);
}

/** Rewrites one segment; returns the earliest time a kept tombstone expires (Infinity if none). */
async function rewriteSegment(log: CompactableLog, seg: Segment, latest: Map<string, number>, now: number, deleteRetentionMs: number): Promise<number> {
  const io = log.env.io;
  const crc = log.env.crc;
  const interval = log.env.indexIntervalBytes;
  const cleaned = seg.logFile + '.cleaned';
  const fd = await io.open(cleaned, 'w');
  const index = new OffsetIndex();
  const timeIndex = new TimeIndex();
  let pending: Uint8Array[] = [];
  let pendingBytes = 0;
  let written = 0;
  let lastIndexed = 0;
  let changed = false;
  let deadline = Infinity;
  let lastRel = 0;
  let writing: Promise<void> = Promise.resolve();
  const emit = (batch: Uint8Array): void => {
    const pos = written + pendingBytes;
    const base = readBaseOffset(batch);
    lastIndexed = indexBatch(index, timeIndex, base - seg.baseOffset, pos, readAppendTime(batch), lastIndexed, interval);
    lastRel = base - seg.baseOffset;
    pending.push(batch);
    pendingBytes += batch.length;
  };
  const flush = async (): Promise<void> => {
    if (pendingBytes === 0) return;
    const bufs = pending;
    const at = written;
    written += pendingBytes;
    pending = [];
    pendingBytes = 0;
    await io.writev(fd, bufs, at);
  };
  try {
    await eachRecordBatch(log, seg, seg.sizeBytes, (b, p, size) => {
      const h = readBatchHeader(b, p);
      const recs = decodeBatchTrusted(b, p);
      const tombstoneExpired = h.appendTime + deleteRetentionMs <= now;
      const keep: StoredRecord[] = [];
      for (const r of recs) {
        const id = keyId(r.key);
        const newest = id === null ? undefined : latest.get(id);
        if (newest !== undefined && newest > r.offset) continue; // a newer record of this key exists
        if (newest === r.offset && r.value === null) {
          if (tombstoneExpired) continue;
          deadline = Math.min(deadline, h.appendTime + deleteRetentionMs);
        }
        keep.push(r);
      }
      if (keep.length === recs.length) emit(b.subarray(p, p + size));
      else {
        changed = true;
        if (keep.length > 0) {
          const records = keep.map((r, i) => ({ ...r, offsetDelta: r.offset - h.baseOffset, sequenceDelta: h.baseSequence >= 0 ? r.sequence - h.baseSequence : i }));
          emit(encodeBatch({ producerId: h.producerId, baseSequence: h.baseSequence, baseOffset: h.baseOffset, appendTime: h.appendTime, records }, crc));
        }
      }
      if (pendingBytes >= WRITE_CHUNK_BYTES) writing = writing.then(flush);
    });
    await writing;
    await flush();
    if (!changed) {
      await io.close(fd);
      await fsp.rm(cleaned, { force: true });
      return deadline;
    }
    await io.fdatasync(fd);
  } catch (err) {
    await io.close(fd).catch(() => undefined);
    await fsp.rm(cleaned, { force: true });
    throw err;
  }
  await io.close(fd);
  if (seg.maxAppendTime > timeIndex.lastTime()) timeIndex.append(seg.maxAppendTime, lastRel);
  if (timeIndex.count === 0) timeIndex.append(Math.max(0, seg.maxAppendTime), 0);
  await log.replaceSegmentFiles(seg, cleaned, { sizeBytes: written, index, timeIndex, lastIndexedPosition: lastIndexed });
  log.env.log.info({ topic: log.topic, partition: log.partition, segment: seg.baseOffset, bytes: written }, 'compacted segment');
  return deadline;
}
