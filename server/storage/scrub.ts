/**
 * The start-up scrub: a background pass over every closed segment that
 * finds what recovery does not look for. Recovery verifies only the active
 * segment's tail (a closed segment was fdatasync'ed when it rolled), so a
 * bit that flips later on the disk, or a segment file that an operator or a
 * failing disk removed, would otherwise be served or skipped in silence.
 *
 * The scrub reads each closed segment once, checks every batch's length,
 * magic and CRC and that its offsets continue the segment, and that each
 * segment ends where the next begins (for `delete` topics: compaction leaves
 * holes on purpose). It reports problems with the offsets they cost; it
 * repairs nothing, since the right repair (restore from a replica or a
 * backup, or accept the loss) is the operator's call.
 */
import fsp from 'node:fs/promises';
import fs from 'node:fs';
import path from 'node:path';
import { checkBatch, readBaseOffset, readLastOffsetDelta } from '../../protocol/batch.ts';
import type { Crc32c } from '../../protocol/crc32c.ts';
import { logPath } from './data-dir.ts';
import type { StorageIo } from './io.ts';
import type { StorageProblem } from './log-store.ts';
import { scanLog } from './segment.ts';

type StorageProblemKind = StorageProblem['kind'];

export interface ScrubTarget {
  topic: string;
  partition: number;
  dir: string;
  /** Whether holes between segments are expected (compacted topics). */
  compacted: boolean;
}

const LOG_NAME = /^\d{20}\.log$/;

/** Checks one closed segment file; `end` is the next segment's base offset. */
async function scrubSegment(io: StorageIo, crc: Crc32c, t: ScrubTarget, file: string, base: number, end: number): Promise<StorageProblem[]> {
  const problems: StorageProblem[] = [];
  const problem = (kind: StorageProblemKind, fromOffset: number, toOffset: number, message: string) =>
    problems.push({ topic: t.topic, partition: t.partition, kind, fromOffset, toOffset, file, message: `${t.topic}/${t.partition}: ${message}` });
  let fd: number;
  try {
    fd = await io.open(file, fs.constants.O_RDONLY);
  } catch (err) {
    // Retention or compaction removed it since the directory was listed: nothing to check.
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return problems;
    problem('unreadable-segment', base, end, `segment ${path.basename(file)} cannot be opened (${(err as NodeJS.ErrnoException).code ?? String(err)}): offsets ${base}–${end - 1} cannot be served`);
    return problems;
  }
  try {
    const size = (await fsp.stat(file)).size;
    let expect = base;
    const stoppedAt = await scanLog(io, fd, 0, size, true, (buf, p, filePos, batchSize) => {
      const batchBase = readBaseOffset(buf, p);
      const batchEnd = batchBase + readLastOffsetDelta(buf, p) + 1;
      if (checkBatch(buf, p, p + batchSize, crc, false) !== null) {
        problem(
          'corrupt-batch',
          batchBase,
          batchEnd,
          `batch at byte ${filePos} of ${path.basename(file)} (offsets ${batchBase}–${batchEnd - 1}) fails its CRC check: those records are damaged on disk`,
        );
      } else if (!t.compacted && batchBase !== expect) {
        problem('missing-offsets', expect, batchBase, `offsets ${expect}–${batchBase - 1} are missing inside ${path.basename(file)}`);
      }
      expect = Math.max(expect, batchEnd);
      return true;
    });
    if (stoppedAt < size) {
      problem('corrupt-batch', expect, end, `${path.basename(file)} is unreadable from byte ${stoppedAt} (a length field is implausible): offsets ${expect}–${end - 1} cannot be served`);
    } else if (!t.compacted && expect < end) {
      problem('missing-offsets', expect, end, `offsets ${expect}–${end - 1} are missing: ${path.basename(file)} ends before the next segment begins`);
    }
  } finally {
    await io.close(fd);
  }
  return problems;
}

/**
 * Scrubs one partition's closed segments (every segment but the newest, which
 * recovery verified). Problems between segments: a gap where a segment file
 * is missing.
 */
export async function scrubPartition(io: StorageIo, crc: Crc32c, t: ScrubTarget): Promise<StorageProblem[]> {
  let names: string[];
  try {
    names = await fsp.readdir(t.dir);
  } catch {
    return [];
  }
  const bases = names
    .filter((n) => LOG_NAME.test(n))
    .map((n) => Number(n.slice(0, 20)))
    .sort((a, b) => a - b);
  const problems: StorageProblem[] = [];
  for (let i = 0; i < bases.length - 1; i++) {
    const file = logPath(t.dir, bases[i]);
    problems.push(...(await scrubSegment(io, crc, t, file, bases[i], bases[i + 1])));
  }
  return problems;
}
