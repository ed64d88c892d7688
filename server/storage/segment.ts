/**
 * One segment of a partition log: `<base>.log` with its sparse `.index` and
 * `.timeindex`. Only the active (last) segment is written; closed segments
 * are read through the shared descriptor cache and their indexes are loaded
 * on demand (IndexCache caps how many stay in memory).
 */
import fsp from 'node:fs/promises';
import { BATCH_HEADER_BYTES, LENGTH_FIELD_END, OFFSET_FIELDS_BYTES, readAppendTime, readBaseOffset, readLastOffsetDelta, readUint32 } from '../../protocol/batch.ts';
import { LIMITS } from '../../protocol/limits.ts';
import { indexPath, logPath, timeIndexPath } from './data-dir.ts';
import { readFully, type StorageIo } from './io.ts';
import { indexBatch, OffsetIndex, TIME_ENTRY_BYTES, TimeIndex } from './segment-index.ts';

const MAX_BATCH_SIZE = LENGTH_FIELD_END + LIMITS.maxBatchBytes;
const HEADER_WITH_PID = BATCH_HEADER_BYTES + 255;
const SCAN_CHUNK_BYTES = 1 << 20;
const FIND_WINDOW_BYTES = 16 << 10;
const INDEX_PERSIST_ENTRIES = 32;

/** Visit one batch at buf[p]; return false to stop the scan before it. */
export type BatchVisitor = (buf: Uint8Array, p: number, filePos: number, size: number) => boolean;

/**
 * Walks the batches of a log file from `from` to `to` by their length fields,
 * in chunks. `whole` hands the visitor complete batches (for CRC checks and
 * decoding); otherwise only headers are guaranteed to be in `buf`. Returns
 * the position where the walk stopped: `to`, a visitor refusal, or the start
 * of a truncated or implausible batch.
 */
export async function scanLog(io: StorageIo, fd: number, from: number, to: number, whole: boolean, visit: BatchVisitor): Promise<number> {
  let filePos = from;
  let buf: Uint8Array = new Uint8Array(0);
  let bufStart = from;
  while (filePos < to) {
    let p = filePos - bufStart;
    if (buf.length - p < LENGTH_FIELD_END) {
      buf = await readFully(io, fd, Math.min(SCAN_CHUNK_BYTES, to - filePos), filePos);
      bufStart = filePos;
      p = 0;
      if (buf.length < LENGTH_FIELD_END) return filePos;
    }
    const size = LENGTH_FIELD_END + readUint32(buf, p + 8);
    if (size < BATCH_HEADER_BYTES || size > MAX_BATCH_SIZE || filePos + size > to) return filePos;
    const need = whole ? size : Math.min(size, HEADER_WITH_PID);
    if (buf.length - p < need) {
      buf = await readFully(io, fd, Math.min(Math.max(SCAN_CHUNK_BYTES, size), to - filePos), filePos);
      bufStart = filePos;
      p = 0;
      if (buf.length < need) return filePos;
    }
    if (!visit(buf, p, filePos, size)) return filePos;
    filePos += size;
  }
  return filePos;
}

export interface ActiveFiles {
  log: number;
  index: number;
  timeIndex: number;
}

export class Segment {
  /** Bytes of whole batches in the log file. */
  sizeBytes: number;
  /** Offset after the last batch (for a closed segment found on start-up: the next segment's base). */
  nextOffset: number;
  /** Append time of the newest batch, -1 when empty. */
  maxAppendTime: number;
  /** Append time of the first batch (for segmentMs rolling), -1 when empty. */
  firstAppendTime = -1;
  index: OffsetIndex | null = null;
  timeIndex: TimeIndex | null = null;
  /** Base offset of the newest batch (-1 when empty or unknown). */
  lastBatchOffset = -1;
  /** Position of the last indexed batch start (sparse index spacing). */
  lastIndexedPosition = 0;
  /** Reads in flight on this segment's file (compaction waits for 0 to swap files). */
  readers = 0;
  /** Set while compaction swaps the file: new reads wait for it. */
  swapping: Promise<void> | null = null;
  /** Descriptors while this is the active segment. */
  active: ActiveFiles | null = null;

  constructor(
    readonly dir: string,
    readonly baseOffset: number,
    sizeBytes: number,
    nextOffset: number,
    maxAppendTime: number,
  ) {
    this.sizeBytes = sizeBytes;
    this.nextOffset = nextOffset;
    this.maxAppendTime = maxAppendTime;
  }

  get logFile(): string {
    return logPath(this.dir, this.baseOffset);
  }
  get indexFile(): string {
    return indexPath(this.dir, this.baseOffset);
  }
  get timeIndexFile(): string {
    return timeIndexPath(this.dir, this.baseOffset);
  }

  /** Records a batch just appended at `position` in the in-memory indexes. */
  noteAppended(position: number, size: number, baseOffset: number, lastOffset: number, appendTime: number, indexIntervalBytes: number): void {
    if (this.sizeBytes === 0 || this.firstAppendTime < 0) this.firstAppendTime = appendTime;
    this.lastIndexedPosition = indexBatch(this.index!, this.timeIndex!, baseOffset - this.baseOffset, position, appendTime, this.lastIndexedPosition, indexIntervalBytes);
    this.sizeBytes = position + size;
    this.nextOffset = lastOffset + 1;
    this.lastBatchOffset = baseOffset;
    if (appendTime > this.maxAppendTime) this.maxAppendTime = appendTime;
  }

  /** The last batch's offset relative to the base (the roll's final time-index entry). */
  lastBatchRel(): number {
    // Unknown after a tail repair that kept nothing past an index entry: any offset in the last batch will do.
    const last = this.lastBatchOffset >= this.baseOffset ? this.lastBatchOffset : this.nextOffset - 1;
    return Math.max(0, last - this.baseOffset);
  }

  /** Whether an unforced persistIndexes would write (INDEX_PERSIST_ENTRIES accumulated in either index of the active segment). */
  indexesDue(): boolean {
    return this.active !== null && (this.index!.count - this.index!.persisted >= INDEX_PERSIST_ENTRIES || this.timeIndex!.count - this.timeIndex!.persisted >= INDEX_PERSIST_ENTRIES);
  }

  /**
   * Writes the index entries not yet in the index files (active segment).
   * Unless forced, waits until INDEX_PERSIST_ENTRIES have accumulated: the
   * append path then costs one write, not three, and recovery only re-scans
   * the few batches after the last persisted entry.
   */
  async persistIndexes(io: StorageIo, force = true): Promise<void> {
    const a = this.active;
    if (!a) return;
    if (!force && !this.indexesDue()) return;
    const o = this.index!.takeUnpersisted();
    const t = this.timeIndex!.takeUnpersisted();
    const jobs: Promise<void>[] = [];
    if (o) jobs.push(io.writev(a.index, [o.bytes], o.filePosition));
    if (t) jobs.push(io.writev(a.timeIndex, [t.bytes], t.filePosition));
    if (jobs.length) await Promise.all(jobs);
  }

  /** Loads (or rebuilds) the indexes of a closed segment. */
  async loadIndexes(io: StorageIo, fd: number, indexIntervalBytes: number): Promise<void> {
    if (this.index && this.timeIndex) return;
    const [ib, tb] = await Promise.all([fsp.readFile(this.indexFile).catch(() => null), fsp.readFile(this.timeIndexFile).catch(() => null)]);
    let index = ib ? OffsetIndex.decode(ib, this.sizeBytes) : null;
    const timeIndex = tb ? TimeIndex.decode(tb, this.nextOffset - this.baseOffset) : null;
    if (index && index.count > 0) {
      // Trust the index only if its last entry lands on the batch it names.
      const last = index.count - 1;
      const h = await readFully(io, fd, OFFSET_FIELDS_BYTES, index.positionAt(last));
      if (h.length < OFFSET_FIELDS_BYTES || readBaseOffset(h) !== this.baseOffset + index.relAt(last)) index = null;
    }
    if (index && timeIndex && ib!.length % 8 === 0 && tb!.length === timeIndex.count * TIME_ENTRY_BYTES) {
      this.index = index;
      this.timeIndex = timeIndex;
      return;
    }
    await this.rebuildIndexes(io, fd, indexIntervalBytes);
  }

  /** Rebuilds both indexes by walking every batch header (missing or bad index files). */
  async rebuildIndexes(io: StorageIo, fd: number, indexIntervalBytes: number): Promise<void> {
    const index = new OffsetIndex();
    const timeIndex = new TimeIndex();
    let lastIndexed = 0;
    let maxTime = -1;
    let next = this.baseOffset;
    let lastRel = 0;
    const end = await scanLog(io, fd, 0, this.sizeBytes, false, (b, p, pos) => {
      const base = readBaseOffset(b, p);
      const t = readAppendTime(b, p);
      lastIndexed = indexBatch(index, timeIndex, base - this.baseOffset, pos, t, lastIndexed, indexIntervalBytes);
      lastRel = base - this.baseOffset;
      if (t > maxTime) maxTime = t;
      next = base + readLastOffsetDelta(b, p) + 1;
      return true;
    });
    if (maxTime > timeIndex.lastTime()) timeIndex.append(maxTime, lastRel);
    this.index = index;
    this.timeIndex = timeIndex;
    this.lastIndexedPosition = lastIndexed;
    this.lastBatchOffset = this.baseOffset + lastRel;
    this.sizeBytes = end;
    if (next > this.baseOffset) this.nextOffset = next;
    if (maxTime >= 0) this.maxAppendTime = maxTime;
    // Best effort: a closed segment's rebuilt index is written back for next time.
    if (!this.active) {
      await writeWhole(this.indexFile, index.encode()).catch(() => undefined);
      await writeWhole(this.timeIndexFile, timeIndex.encode()).catch(() => undefined);
    }
  }

  /**
   * Finds the batch containing `offset` at or after the index floor and
   * returns whole batches from it, up to about `maxBytes` (at least one), not
   * past `endPos`. Null when no batch at or below `endPos` holds `offset`.
   */
  async readFrom(io: StorageIo, fd: number, offset: number, maxBytes: number, endPos: number): Promise<{ bytes: Uint8Array; nextOffset: number } | null> {
    let pos = this.index ? this.index.floorPosition(offset - this.baseOffset) : 0;
    let buf: Uint8Array = new Uint8Array(0);
    let bufStart = pos;
    let start = -1;
    let firstSize = 0;
    // Phase 1: walk headers from the index floor to the batch holding `offset`.
    while (pos < endPos) {
      let p = pos - bufStart;
      if (buf.length - p < OFFSET_FIELDS_BYTES) {
        buf = await readFully(io, fd, Math.min(Math.max(FIND_WINDOW_BYTES, maxBytes), endPos - pos), pos);
        bufStart = pos;
        p = 0;
        if (buf.length < OFFSET_FIELDS_BYTES) return null;
      }
      const size = LENGTH_FIELD_END + readUint32(buf, p + 8);
      if (size < BATCH_HEADER_BYTES) return null;
      if (readBaseOffset(buf, p) + readLastOffsetDelta(buf, p) >= offset) {
        start = pos;
        firstSize = size;
        break;
      }
      pos += size;
    }
    if (start < 0 || start + firstSize > endPos) return null;
    // Phase 2: whole batches from `start`, reusing the window when it covers them.
    const want = Math.min(Math.max(maxBytes, firstSize), endPos - start);
    let data: Uint8Array;
    if (start - bufStart + want <= buf.length) data = buf.subarray(start - bufStart, start - bufStart + want);
    else data = await readFully(io, fd, want, start);
    let end = 0;
    let nextOffset = offset;
    while (end + LENGTH_FIELD_END <= data.length) {
      const size = LENGTH_FIELD_END + readUint32(data, end + 8);
      if (end + size > data.length || (end > 0 && end + size > maxBytes)) break;
      nextOffset = readBaseOffset(data, end) + readLastOffsetDelta(data, end) + 1;
      end += size;
    }
    if (end === 0) return null;
    return { bytes: data.subarray(0, end), nextOffset };
  }

  /** Base offset of the first batch appended at or after `ts`, or -1 when none up to `endPos`. */
  async offsetForTime(io: StorageIo, fd: number, ts: number, endPos: number): Promise<number> {
    const rel = this.timeIndex ? this.timeIndex.floorRelOffsetBefore(ts) : -1;
    const from = rel <= 0 || !this.index ? 0 : this.index.floorPosition(rel);
    let found = -1;
    await scanLog(io, fd, from, endPos, false, (b, p) => {
      if (readAppendTime(b, p) >= ts) {
        found = readBaseOffset(b, p);
        return false;
      }
      return true;
    });
    return found;
  }

  memoryBytes(): number {
    return (this.index?.memoryBytes() ?? 0) + (this.timeIndex?.memoryBytes() ?? 0);
  }
}

async function writeWhole(file: string, bytes: Uint8Array): Promise<void> {
  await fsp.writeFile(file, bytes);
}

/** Closes an active segment's three descriptors, ignoring close errors. */
export async function closeActiveFiles(io: StorageIo, files: ActiveFiles): Promise<void> {
  await Promise.all([io.close(files.log), io.close(files.index), io.close(files.timeIndex)]).catch(() => undefined);
}

/** Opens an active segment's log and indexes, closing what was opened if one fails. */
export async function openActiveFiles(io: StorageIo, dir: string, base: number, flags: string): Promise<ActiveFiles> {
  const log = await io.open(logPath(dir, base), flags);
  const index = await io.open(indexPath(dir, base), flags).catch(async (err) => {
    await io.close(log);
    throw err;
  });
  const timeIndex = await io.open(timeIndexPath(dir, base), flags).catch(async (err) => {
    await Promise.all([io.close(log), io.close(index)]);
    throw err;
  });
  return { log, index, timeIndex };
}
