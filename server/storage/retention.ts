/**
 * Retention: whole closed segments go, oldest first, while they are older
 * than `retentionMs` (by their newest append time) or while the partition is
 * larger than `retentionBytes`. The active segment is never deleted; the
 * log deletes them (PartitionLog.deleteOldestSegments) and moves its
 * earliest offset to the first remaining segment.
 */
import type { PartitionView } from './partition-view.ts';

/** How many of the oldest segments the topic's retention removes from this partition. */
export function segmentsPastRetention(log: PartitionView): number {
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
  return drop;
}
