/**
 * The slow paths of idempotence: finding a producer's batches in the log
 * when the in-memory table no longer has them (a retry older than the last
 * five batches, or a producer evicted from the table). They walk batch
 * headers newest segment first; only matching batches are decoded.
 */
import { decodeBatchTrusted, producerIdBytes, readAppendTime, readBaseOffset, readBaseSequence, readLastOffsetDelta, readLastSequence } from '../../protocol/batch.ts';
import { TributaryError } from '../../protocol/errors.ts';
import type { AppendResult } from './log-store.ts';
import type { PartitionView } from './partition-view.ts';
import type { ProducerEntry } from './producer-state.ts';
import { scanLog } from './segment.ts';

function pidMatches(b: Uint8Array, p: number, pid: Uint8Array): boolean {
  const inBatch = producerIdBytes(b, p);
  if (inBatch.length !== pid.length) return false;
  for (let i = 0; i < pid.length; i++) if (inBatch[i] !== pid[i]) return false;
  return true;
}

/** Walks each segment (newest first) with `visit` until it returns true for a segment. */
async function eachSegmentNewestFirst(log: PartitionView, whole: boolean, visit: (b: Uint8Array, p: number) => void, doneAfterSegment: () => boolean): Promise<void> {
  const segs = log.segments.slice();
  for (let i = segs.length - 1; i >= 0; i--) {
    const seg = segs[i];
    const end = seg === log.active ? log.ackedPos : seg.sizeBytes;
    if (end === 0) continue;
    const h = await log.env.handles.acquire(seg.logFile);
    try {
      await scanLog(log.env.io, h.fd, 0, end, whole, (b, p) => {
        visit(b, p);
        return true;
      });
    } finally {
      h.release();
    }
    if (doneAfterSegment()) return;
  }
}

/** The producer's newest state as the log shows it, or null when it has no batch in the log. */
export async function findProducerInLog(log: PartitionView, pid: string): Promise<ProducerEntry | null> {
  const pidBytes = Buffer.from(pid);
  let entry: ProducerEntry | null = null;
  await eachSegmentNewestFirst(
    log,
    false,
    (b, p) => {
      if (!pidMatches(b, p, pidBytes)) return;
      const firstSeq = readBaseSequence(b, p);
      if (firstSeq < 0) return;
      const lastSeq = readLastSequence(b, p);
      const baseOffset = readBaseOffset(b, p);
      const batch = { firstSeq, lastSeq, baseOffset, lastOffset: baseOffset + readLastOffsetDelta(b, p), appendTime: readAppendTime(b, p), prevLastSeq: -1 };
      if (!entry) entry = { lastSeq, batches: [batch] };
      else if (lastSeq > entry.lastSeq) {
        batch.prevLastSeq = entry.lastSeq;
        entry.lastSeq = lastSeq;
        entry.batches.push(batch);
        if (entry.batches.length > 5) entry.batches.shift();
      }
    },
    () => entry !== null,
  );
  return entry;
}

/**
 * Original offsets of a retried batch whose sequences are all at or below the
 * producer's highest: from the producer's recent batches when one matches
 * whole, else from the log; OUT_OF_ORDER_SEQUENCE when they are not there.
 */
export async function findDuplicate(log: PartitionView, entry: ProducerEntry | undefined, retry: Uint8Array, pid: string, firstSeq: number, lastSeq: number, count: number): Promise<AppendResult> {
  const hit = entry?.batches.find((x) => x.firstSeq === firstSeq && x.lastSeq === lastSeq && x.lastOffset - x.baseOffset === count - 1);
  if (hit) {
    const offsets = new Array<number>(count);
    for (let i = 0; i < count; i++) offsets[i] = hit.baseOffset + i;
    return { offsets, baseOffset: hit.baseOffset, appendTime: hit.appendTime, duplicate: true };
  }
  const found = await findDuplicateInLog(log, retry, pid, firstSeq, lastSeq);
  if (!found) throw new TributaryError('OUT_OF_ORDER_SEQUENCE', `sequences ${firstSeq}..${lastSeq} are at or below the highest appended but not in the log`, { lastSequence: entry?.lastSeq ?? -1 });
  return found;
}

/** A retried batch's original offsets from the log: every record's sequence must be found there. */
async function findDuplicateInLog(log: PartitionView, retry: Uint8Array, pid: string, firstSeq: number, lastSeq: number): Promise<AppendResult | null> {
  const pidBytes = Buffer.from(pid);
  const bySeq = new Map<number, number>();
  let appendTime = -1;
  await eachSegmentNewestFirst(
    log,
    true,
    (b, p) => {
      if (!pidMatches(b, p, pidBytes)) return;
      const s0 = readBaseSequence(b, p);
      const s1 = readLastSequence(b, p);
      if (s0 < 0 || s1 < firstSeq || s0 > lastSeq) return;
      for (const r of decodeBatchTrusted(b, p)) if (r.sequence >= firstSeq && r.sequence <= lastSeq) bySeq.set(r.sequence, r.offset);
      if (appendTime < 0 || s0 <= firstSeq) appendTime = readAppendTime(b, p);
    },
    () => bySeq.has(firstSeq),
  );
  if (bySeq.size === 0) return null;
  const offsets: number[] = [];
  for (const r of decodeBatchTrusted(retry, 0)) {
    const o = bySeq.get(r.sequence);
    if (o === undefined) return null;
    offsets.push(o);
  }
  return { offsets, baseOffset: offsets[0], appendTime, duplicate: true };
}
