/**
 * Retention: deletes whole closed segments, oldest first, while they are
 * older than `retentionMs` (by their newest append time) or while the
 * partition is larger than `retentionBytes`. The active segment is never
 * deleted. The earliest offset moves to the first remaining segment.
 */
import fsp from 'node:fs/promises';
import type { PartitionLog } from './partition-log.ts';
import type { Segment } from './segment.ts';

/** Applies the topic's retention to one partition; returns how many segments were deleted. */
export async function applyRetention(log: PartitionLog): Promise<number> {
  const cfg = log.config();
  const now = log.env.now();
  const segs = log.segments;
  const closed = segs.length - 1;
  let drop = 0;
  if (cfg.retentionMs >= 0) {
    while (drop < closed && segs[drop].maxAppendTime < now - cfg.retentionMs) drop++;
  }
  if (cfg.retentionBytes >= 0) {
    let total = 0;
    for (let i = drop; i < segs.length; i++) total += segs[i].sizeBytes;
    while (drop < closed && total > cfg.retentionBytes) total -= segs[drop++].sizeBytes;
  }
  if (drop === 0) return 0;
  await deleteOldestSegments(log, drop);
  return drop;
}

/** Removes the `n` oldest segments (never the active one) from the log and the disk. */
export async function deleteOldestSegments(log: PartitionLog, n: number): Promise<void> {
  const count = Math.min(n, log.segments.length - 1);
  if (count <= 0) return;
  // A new array, not splice: reads in flight keep iterating the one they took.
  const gone: Segment[] = log.segments.slice(0, count);
  log.segments = log.segments.slice(count);
  log.earliest = log.segments[0].baseOffset;
  for (const seg of gone) {
    log.env.handles.invalidate(seg.logFile);
    log.env.indexCache.forget(seg);
    // The log goes first: an index without its log is swept on start-up.
    await fsp.rm(seg.logFile, { force: true });
    await Promise.all([fsp.rm(seg.indexFile, { force: true }), fsp.rm(seg.timeIndexFile, { force: true })]);
  }
  log.env.log.info({ topic: log.topic, partition: log.partition, segments: count, earliest: log.earliest }, 'retention deleted segments');
}
