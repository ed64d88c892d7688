/**
 * fsync "always" writes through a second descriptor of the active segment's
 * log, opened with O_DSYNC: a write returns once its bytes are as durable as
 * after fdatasync (Linux syncs the written range and the size change that
 * finds it), so a group commit is one thread-pool trip instead of two
 * (writev, then fdatasync). Each trip wakes a pool thread and then the event
 * loop; on a busy 2-core machine each wake-up is a chance to wait behind
 * another process, which is where the p99 of a small request went (issue 13).
 *
 * O_DSYNC only covers what is written through it: bytes written before
 * through the plain descriptor (fsync "interval" or "never" before a switch
 * to "always", a tail re-read after a failure) still need one fdatasync; the
 * partition writer tracks that (`PartitionLog.unsyncedWrites`).
 */
import fs from 'node:fs';
import { checkBatch, producerIdBytes, readBaseSequence, readLastSequence, readLastOffsetDelta, readRecordCount, readUint32, BATCH_HEADER_BYTES, LENGTH_FIELD_END } from '../../protocol/batch.ts';
import type { Crc32c } from '../../protocol/crc32c.ts';
import { TributaryError } from '../../protocol/errors.ts';
import { fromUtf8 } from '../../protocol/record.ts';
import type { StorageIo } from './io.ts';
import type { AppendResult } from './log-store.ts';
import type { Segment } from './segment.ts';
import type { WriteBuffers } from './write-buffers.ts';

/** One appended batch waiting for its group commit. */
export interface Pending {
  batch: Uint8Array;
  base: number;
  last: number;
  appendTime: number;
  /** `batch` is WriteBuffers memory, released once the group's write is done (appendBorrowed). */
  pooled: boolean;
  resolve: (r: AppendResult) => void;
  reject: (e: Error) => void;
}

/**
 * A group's write already issued; its outcome is kept as a value (null or the
 * error) so that a write nobody awaits yet never rejects unhandled.
 */
export interface GroupWrite {
  group: Pending[];
  seg: Segment;
  fd: number;
  pos: number;
  bytes: number;
  startedAt: number;
  outcome: Promise<unknown>;
}

/**
 * Checks one batch handed to a partition's append (whole, CRC, dense offset
 * deltas) and reads what idempotence needs: `pid` is '' for a batch without
 * producer id or sequence. Throws TributaryError.
 */
export function checkAppended(b: Uint8Array, crc: Crc32c): { count: number; pid: string; baseSeq: number; lastSeq: number } {
  const fault = b.length < BATCH_HEADER_BYTES ? 'truncated' : checkBatch(b, 0, b.length, crc, false);
  if (fault) throw new TributaryError(fault === 'bad-crc' ? 'CORRUPT_BATCH' : 'BAD_BATCH', `record batch is ${fault}`);
  if (LENGTH_FIELD_END + readUint32(b, 8) !== b.length) throw new TributaryError('BAD_BATCH', 'buffer holds more than one batch');
  const count = readRecordCount(b);
  if (count === 0 || readLastOffsetDelta(b) !== count - 1) throw new TributaryError('BAD_BATCH', 'a produced batch needs dense offset deltas 0..count-1');
  const baseSeq = readBaseSequence(b);
  if (baseSeq < -1) throw new TributaryError('BAD_SEQUENCE', 'negative base sequence');
  const pidBytes = producerIdBytes(b);
  if (baseSeq < 0 || pidBytes.length === 0) return { count, pid: '', baseSeq, lastSeq: -1 };
  return { count, pid: fromUtf8(pidBytes), baseSeq, lastSeq: readLastSequence(b) };
}

/**
 * fsync "always": O_DSYNC writes a partition issues behind the one its writer
 * waits for: at most 3 in flight, of libuv's 4 pool threads (one stays free
 * for reads and index writes).
 */
export const MAX_WRITES_AHEAD = 2;

const MAX_GROUP_BATCHES = 512;
const MAX_GROUP_BYTES = 16 << 20;

/** How many queued batches one group takes when its first byte lands at `startPos` of a segment of at most `segmentBytes`. */
export function groupSize(queue: readonly Pending[], startPos: number, segmentBytes: number): { n: number; bytes: number } {
  let n = 0;
  let bytes = 0;
  while (n < queue.length && n < MAX_GROUP_BATCHES) {
    const s = queue[n].batch.length;
    if (n > 0 && (startPos + bytes + s > segmentBytes || bytes + s > MAX_GROUP_BYTES)) break;
    bytes += s;
    n++;
  }
  return { n, bytes };
}

/**
 * Issues one group's write of `queue[0..n)` at `pos` through `fd`. Pooled
 * batches go back to `buffers` when the write is done, landed or failed:
 * nothing reads them afterwards (noteAppended takes lengths; a failure
 * re-reads the tail from the disk).
 */
export function issueGroupWrite(io: StorageIo, buffers: WriteBuffers, fd: number, seg: Segment, group: Pending[], pos: number, bytes: number): GroupWrite {
  const bufs = new Array<Uint8Array>(group.length);
  let pooled = false;
  for (let i = 0; i < group.length; i++) {
    bufs[i] = group[i].batch;
    if (group[i].pooled) pooled = true;
  }
  const startedAt = groupWriteTimes ? performance.now() : 0;
  const written = io.writev(fd, bufs, pos);
  const outcome = pooled
    ? written.then(
        () => releasePooled(buffers, group),
        (err: unknown) => (releasePooled(buffers, group), err ?? new Error('write failed')),
      )
    : written.then(
        () => null,
        (err: unknown) => err ?? new Error('write failed'),
      );
  return { group, seg, fd, pos, bytes, startedAt, outcome };
}

/** Gives `group`'s pooled batches back (each once): their write is done, or they will never be written. */
export function releasePooled(buffers: WriteBuffers, group: Pending[]): null {
  for (const g of group) {
    if (!g.pooled) continue;
    g.pooled = false;
    buffers.release(g.batch);
  }
  return null;
}

/** The result an append resolves with once its group is acknowledged. */
export function resultOf(g: Pending): AppendResult {
  const n = g.last - g.base + 1;
  const offsets = new Array<number>(n);
  for (let i = 0; i < n; i++) offsets[i] = g.base + i;
  return { offsets, baseOffset: g.base, appendTime: g.appendTime, duplicate: false };
}

/** Undefined where the platform has no O_DSYNC (Windows): then every group uses writev + fdatasync. */
const O_DSYNC: number | undefined = fs.constants.O_DSYNC;

/** Group-commit writes kept at most (a run at 10,000 events/s for ten minutes fits). */
const MAX_WRITE_SAMPLES = 1_000_000;

/**
 * How long each group commit's O_DSYNC write took (ms), kept only when
 * TRIBUTARY_DEBUG_STAGES is set (broker/stage-timing.ts reports them): the
 * disk's share of produce→durable, apart from the wait for the writer.
 */
export const groupWriteTimes: number[] | null = process.env.TRIBUTARY_DEBUG_STAGES ? [] : null;

/** Notes one group commit's write that started at `startedAt` (performance.now()). */
export function noteGroupWrite(startedAt: number): void {
  if (groupWriteTimes && groupWriteTimes.length < MAX_WRITE_SAMPLES) groupWriteTimes.push(performance.now() - startedAt);
}

/** One partition's O_DSYNC descriptor, for its active segment only; used by the partition's one writer. */
export class DurableLog {
  private open: { seg: Segment; fd: number } | null = null;

  constructor(private readonly io: StorageIo) {}

  /** The O_DSYNC descriptor of `seg`'s log, opened on first use (closing the previous segment's); -1 without O_DSYNC. */
  async fdFor(seg: Segment): Promise<number> {
    if (this.open?.seg === seg) return this.open.fd;
    if (O_DSYNC === undefined) return -1;
    await this.close();
    const fd = await this.io.open(seg.logFile, fs.constants.O_WRONLY | O_DSYNC);
    this.open = { seg, fd };
    return fd;
  }

  /** The O_DSYNC descriptor of `seg` if it is open now (no I/O), else -1. */
  openFdFor(seg: Segment): number {
    return this.open?.seg === seg ? this.open.fd : -1;
  }

  /** Closes the descriptor (a roll, a failure, shutdown); the next write opens one again. */
  async close(): Promise<void> {
    const o = this.open;
    if (!o) return;
    this.open = null;
    await this.io.close(o.fd).catch(() => undefined);
  }
}
