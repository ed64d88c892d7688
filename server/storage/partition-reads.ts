/**
 * Reads of a partition: the tail cache first (consumers at the tip), then the
 * segment holding the offset through the shared descriptor cache. Reads never
 * take the writer's path, so they never block appends; they only wait for a
 * compaction's file swap on the segment they read.
 */
import { TributaryError } from '../../protocol/errors.ts';
import type { ReadResult } from './log-store.ts';
import type { PartitionView } from './partition-view.ts';
import type { Segment } from './segment.ts';

/** Whole batches from the one holding `offset`, below the high watermark (LogStore.read). */
export async function readPartition(log: PartitionView, offset: number, maxBytes: number): Promise<ReadResult> {
  const hw = log.highWatermark;
  if (!Number.isSafeInteger(offset) || offset < log.earliest || offset > hw) {
    throw new TributaryError('OFFSET_OUT_OF_RANGE', `offset ${offset} is outside [${log.earliest}, ${hw}] of ${log.topic}/${log.partition}`, { earliest: log.earliest, logEnd: log.logEnd });
  }
  const empty: ReadResult = { bytes: new Uint8Array(0), nextOffset: offset, highWatermark: hw };
  if (offset === hw) return empty;
  const cached = log.tail.read(offset, maxBytes, hw);
  if (cached) return { bytes: cached.bytes, nextOffset: cached.nextOffset, highWatermark: hw };
  const segs = log.segments;
  let i = segmentFor(segs, offset);
  let at = offset;
  for (; i < segs.length; i++) {
    const seg = segs[i];
    if (seg.baseOffset >= hw) break;
    if (seg.baseOffset > at) at = seg.baseOffset;
    const r = await readSegment(log, seg, at, maxBytes);
    if (r) return { bytes: r.bytes, nextOffset: r.nextOffset, highWatermark: hw };
  }
  // Only gaps left by compaction between `offset` and the high watermark.
  return { bytes: new Uint8Array(0), nextOffset: hw, highWatermark: hw };
}

/** readPartition's answer when the tail cache holds it, else null (out of range, at the tip, or not cached: the async read decides). */
export function readCachedTail(log: PartitionView, offset: number, maxBytes: number): ReadResult | null {
  const hw = log.highWatermark;
  if (!Number.isSafeInteger(offset) || offset < log.earliest || offset >= hw) return null;
  const cached = log.tail.read(offset, maxBytes, hw);
  return cached ? { bytes: cached.bytes, nextOffset: cached.nextOffset, highWatermark: hw } : null;
}

/** Holds the segment against a compaction swap for the duration of `fn`. */
async function withSegment<T>(log: PartitionView, seg: Segment, fn: (fd: number) => Promise<T>): Promise<T> {
  while (seg.swapping) await seg.swapping;
  seg.readers++;
  try {
    const h = await log.env.handles.acquire(seg.logFile);
    try {
      if (!seg.index) await seg.loadIndexes(log.env.io, h.fd, log.env.indexIntervalBytes);
      if (!seg.active) log.env.indexCache.touch(seg);
      return await fn(h.fd);
    } finally {
      h.release();
    }
  } catch (err) {
    // Retention removed the segment under the read: the offset is gone.
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' && !log.segments.includes(seg)) {
      throw new TributaryError('OFFSET_OUT_OF_RANGE', `segment ${seg.baseOffset} of ${log.topic}/${log.partition} was deleted by retention`, { earliest: log.earliest, logEnd: log.logEnd });
    }
    throw err;
  } finally {
    seg.readers--;
  }
}

function readSegment(log: PartitionView, seg: Segment, offset: number, maxBytes: number): Promise<{ bytes: Uint8Array; nextOffset: number } | null> {
  return withSegment(log, seg, (fd) => {
    const endPos = seg === log.active ? log.hwPos : seg.sizeBytes;
    if (endPos === 0) return Promise.resolve(null);
    return seg.readFrom(log.env.io, fd, offset, maxBytes, endPos);
  });
}

/** The first offset appended at or after `ts` (batch granularity), or the high watermark. */
export async function partitionOffsetForTime(log: PartitionView, ts: number): Promise<number> {
  const hw = log.highWatermark;
  for (const seg of log.segments) {
    if (seg.maxAppendTime < ts || seg.baseOffset >= hw) continue;
    const off = await withSegment(log, seg, (fd) => seg.offsetForTime(log.env.io, fd, ts, seg === log.active ? log.hwPos : seg.sizeBytes));
    if (off >= 0) return Math.min(Math.max(off, log.earliest), hw);
  }
  return hw;
}

/** Index of the last segment whose base offset is <= offset (0 when below all). */
function segmentFor(segs: readonly Segment[], offset: number): number {
  let lo = 0;
  let hi = segs.length - 1;
  let best = 0;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    if (segs[mid].baseOffset <= offset) {
      best = mid;
      lo = mid + 1;
    } else hi = mid - 1;
  }
  return best;
}
