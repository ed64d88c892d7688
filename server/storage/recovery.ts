/**
 * Opening a partition after a clean or unclean shutdown, and re-verifying
 * its tail after a write failure.
 *
 * Only the active segment is scanned, and only after its last index entry
 * that still lands on the batch it names: index entries are written right
 * after the data they point to, so everything before the last good entry was
 * verified when it was first appended, and every closed segment was
 * fdatasync'ed when it was rolled. Each batch after that point must have a
 * plausible length, a good CRC and offsets that continue the log; the first
 * one that does not marks the torn tail, which is truncated.
 */
import fsp from 'node:fs/promises';
import fs from 'node:fs';
import path from 'node:path';
import { checkBatch, OFFSET_FIELDS_BYTES, producerIdBytes, readAppendTime, readBaseOffset, readBaseSequence, readInt64, readLastOffsetDelta, readLastSequence } from '../../protocol/batch.ts';
import { fromUtf8 } from '../../protocol/record.ts';
import { offsetName } from './data-dir.ts';
import { readFully, type StorageIo } from './io.ts';
import type { PartitionEnv, PartitionView } from './partition-view.ts';
import { loadSnapshot, type ProducerStateTable } from './producer-state.ts';
import { OffsetIndex, TIME_ENTRY_BYTES, OFFSET_ENTRY_BYTES, TimeIndex } from './segment-index.ts';
import { scanLog, Segment, type ActiveFiles } from './segment.ts';

const RW_CREATE = fs.constants.O_RDWR | fs.constants.O_CREAT;

/** Removes leftovers of interrupted work: compaction output, temp files, indexes without a log. */
async function sweep(dir: string, names: string[]): Promise<string[]> {
  const logs = new Set(names.filter((n) => /^\d{20}\.log$/.test(n)).map((n) => n.slice(0, 20)));
  const keep: string[] = [];
  for (const n of names) {
    const orphanIndex = /^\d{20}\.(index|timeindex)$/.test(n) && !logs.has(n.slice(0, 20));
    if (n.includes('.cleaned') || n.includes('.tmp-') || orphanIndex) await fsp.rm(path.join(dir, n), { force: true });
    else keep.push(n);
  }
  return keep;
}

/** Newest append time recorded for a closed segment: last .timeindex entry, else the file's mtime. */
async function closedMaxTime(seg: Segment): Promise<number> {
  try {
    const b = await fsp.readFile(seg.timeIndexFile);
    const n = Math.floor(b.length / TIME_ENTRY_BYTES);
    if (n > 0) {
      const t = readInt64(b, (n - 1) * TIME_ENTRY_BYTES);
      if (t >= 0) return t;
    }
  } catch {
    // missing: fall through
  }
  const st = await fsp.stat(seg.logFile);
  return st.mtimeMs;
}

/**
 * Verifies whole batches of `seg` from `from` to `to` (CRC, continuing
 * offsets), records them in the in-memory indexes, and returns where the
 * valid log ends.
 */
async function verifyFrom(env: PartitionEnv, seg: Segment, fd: number, from: number, to: number, expectBase: number): Promise<number> {
  let expect = expectBase;
  const onBatch = (b: Uint8Array, p: number, pos: number, size: number): boolean => {
    if (checkBatch(b, p, p + size, env.crc, false) !== null) return false;
    const base = readBaseOffset(b, p);
    if (base < expect) return false;
    const last = base + readLastOffsetDelta(b, p);
    seg.noteAppended(pos, size, base, last, readAppendTime(b, p), env.indexIntervalBytes);
    expect = last + 1;
    return true;
  };
  return scanLog(env.io, fd, from, to, true, onBatch);
}

/** Loads the active segment's index files and keeps the entries that land on the batches they name. */
async function loadActiveIndexes(io: StorageIo, seg: Segment, files: ActiveFiles, logBytes: number): Promise<void> {
  const [ib, tb] = await Promise.all([io.fsize(files.index), io.fsize(files.timeIndex)]);
  const index = OffsetIndex.decode(await readFully(io, files.index, ib, 0), logBytes);
  while (index.count > 0) {
    const pos = index.positionAt(index.count - 1);
    const h = await readFully(io, files.log, OFFSET_FIELDS_BYTES, pos);
    if (h.length === OFFSET_FIELDS_BYTES && readBaseOffset(h) === seg.baseOffset + index.relAt(index.count - 1)) break;
    index.truncateToPosition(pos);
  }
  const lastRel = index.count ? index.relAt(index.count - 1) : 0;
  const timeIndex = TimeIndex.decode(await readFully(io, files.timeIndex, tb, 0), lastRel);
  seg.index = index;
  seg.timeIndex = timeIndex;
  seg.lastIndexedPosition = index.lastPosition();
}

/** Cuts the index files back to the entries kept in memory. */
async function trimIndexFiles(io: StorageIo, seg: Segment, files: ActiveFiles): Promise<void> {
  const index = seg.index!;
  const timeIndex = seg.timeIndex!;
  index.persisted = Math.min(index.persisted, index.count);
  timeIndex.persisted = Math.min(timeIndex.persisted, timeIndex.count);
  await Promise.all([io.ftruncate(files.index, index.persisted * OFFSET_ENTRY_BYTES), io.ftruncate(files.timeIndex, timeIndex.persisted * TIME_ENTRY_BYTES)]);
}

/** Verifies the active segment's tail from its last good index entry and truncates what does not verify. */
async function recoverActive(env: PartitionEnv, seg: Segment, files: ActiveFiles, limit: number): Promise<void> {
  const io = env.io;
  const fileBytes = Math.min(await io.fsize(files.log), limit);
  await loadActiveIndexes(io, seg, files, fileBytes);
  const from = seg.index!.lastPosition();
  const fromRel = seg.index!.count ? seg.index!.relAt(seg.index!.count - 1) : 0;
  seg.timeIndex!.truncateToRelOffset(fromRel + 1);
  seg.sizeBytes = from;
  seg.nextOffset = seg.baseOffset + fromRel;
  const end = await verifyFrom(env, seg, files.log, from, fileBytes, seg.baseOffset + fromRel);
  const onDisk = await io.fsize(files.log);
  if (end < onDisk) {
    env.log.warn({ segment: seg.logFile, validBytes: end, truncatedBytes: onDisk - end }, 'truncating torn or corrupt log tail');
    await io.ftruncate(files.log, end);
    await io.fdatasync(files.log);
  }
  // When even the batch at the index entry failed, the log ends at that entry.
  seg.sizeBytes = end;
  seg.index!.truncateToPosition(end);
  seg.timeIndex!.truncateToRelOffset(seg.nextOffset - seg.baseOffset);
  seg.lastIndexedPosition = seg.index!.lastPosition();
  const first = seg.timeIndex!.firstTime();
  if (first >= 0) seg.firstAppendTime = first;
  await trimIndexFiles(io, seg, files);
}

/** Replays batch headers from `from` to the end of the log into the producer table. */
async function replayProducers(env: PartitionEnv, segments: Segment[], producers: ProducerStateTable, from: number): Promise<void> {
  for (const seg of segments) {
    if (seg.nextOffset <= from || seg.sizeBytes === 0) continue;
    const fd = await env.io.open(seg.logFile, 'r');
    try {
      let start = 0;
      if (seg.active === null) await seg.loadIndexes(env.io, fd, env.indexIntervalBytes);
      if (seg.index && from > seg.baseOffset) start = seg.index.floorPosition(from - seg.baseOffset);
      await scanLog(env.io, fd, start, seg.sizeBytes, false, (b, p) => {
        const base = readBaseOffset(b, p);
        const firstSeq = readBaseSequence(b, p);
        const pid = producerIdBytes(b, p);
        if (base >= from && firstSeq >= 0 && pid.length > 0) {
          producers.record(fromUtf8(pid), firstSeq, readLastSequence(b, p), base, base + readLastOffsetDelta(b, p), readAppendTime(b, p));
        }
        return true;
      });
    } finally {
      await env.io.close(fd);
    }
  }
}

/** Opens (creating if needed) one partition directory and recovers it. Returns its segments, the last one active. */
export async function recoverPartition(env: PartitionEnv, dir: string, producers: ProducerStateTable): Promise<Segment[]> {
  await fsp.mkdir(dir, { recursive: true });
  const names = await sweep(dir, await fsp.readdir(dir));
  const bases = names
    .filter((n) => /^\d{20}\.log$/.test(n))
    .map((n) => Number(n.slice(0, 20)))
    .sort((a, b) => a - b);
  if (bases.length === 0) bases.push(0);
  const segments: Segment[] = [];
  for (let i = 0; i < bases.length - 1; i++) {
    const seg = new Segment(dir, bases[i], 0, bases[i + 1], -1);
    seg.sizeBytes = (await fsp.stat(seg.logFile)).size;
    seg.maxAppendTime = await closedMaxTime(seg);
    segments.push(seg);
  }
  const base = bases[bases.length - 1];
  const active = new Segment(dir, base, 0, base, -1);
  const files: ActiveFiles = {
    log: await env.io.open(path.join(dir, offsetName(base) + '.log'), RW_CREATE),
    index: await env.io.open(path.join(dir, offsetName(base) + '.index'), RW_CREATE),
    timeIndex: await env.io.open(path.join(dir, offsetName(base) + '.timeindex'), RW_CREATE),
  };
  active.active = files;
  try {
    await recoverActive(env, active, files, Number.MAX_SAFE_INTEGER);
  } catch (err) {
    await Promise.all([env.io.close(files.log), env.io.close(files.index), env.io.close(files.timeIndex)]).catch(() => undefined);
    throw err;
  }
  if (active.sizeBytes === 0 && segments.length > 0) active.maxAppendTime = segments[segments.length - 1].maxAppendTime;
  segments.push(active);
  const snapAt = await loadSnapshot(dir, producers, active.nextOffset);
  await replayProducers(env, segments, producers, snapAt < 0 ? segments[0].baseOffset : snapAt);
  return segments;
}

/**
 * After a write or fsync failure: reopen the active log (the old descriptor's
 * page cache cannot be trusted), verify what was acknowledged and truncate
 * everything else. Returns the reopened files for the log to swap in; throws
 * while the disk still fails.
 */
export async function reverifyTail(log: PartitionView): Promise<{ files: ActiveFiles; nextOffset: number; sizeBytes: number }> {
  const env = log.env;
  const io = env.io;
  const seg = log.active;
  const files: ActiveFiles = {
    log: await io.open(seg.logFile, RW_CREATE),
    index: await io.open(seg.indexFile, RW_CREATE),
    timeIndex: await io.open(seg.timeIndexFile, RW_CREATE),
  };
  try {
    await io.ftruncate(files.log, Math.min(log.ackedPos, await io.fsize(files.log)));
    await recoverActive(env, seg, files, log.ackedPos);
    await Promise.all([io.fdatasync(files.log), io.fdatasync(files.index), io.fdatasync(files.timeIndex)]);
  } catch (err) {
    await Promise.all([io.close(files.log), io.close(files.index), io.close(files.timeIndex)]).catch(() => undefined);
    throw err;
  }
  return { files, nextOffset: seg.nextOffset, sizeBytes: seg.sizeBytes };
}
