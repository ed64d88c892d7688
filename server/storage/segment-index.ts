/**
 * Sparse indexes of one segment, after Kafka's: `.index` maps a relative
 * offset to the byte position of the batch that starts there, `.timeindex`
 * maps an append time to the relative offset of the first batch appended at
 * or after it. An entry is added at most every `indexIntervalBytes` of log,
 * so lookups land on a batch boundary a few KiB before the target and scan
 * forward through batch headers.
 *
 * On disk: .index entries are 8 bytes (u32 relOffset, u32 position),
 * .timeindex entries 12 bytes (i64 appendTime, u32 relOffset), big-endian,
 * appended as the log grows. Files are untrusted on load: a torn or garbled
 * tail is cut at the first entry that does not increase.
 */
import { readInt64, readUint32, writeInt64, writeUint32 } from '../../protocol/batch.ts';

export const OFFSET_ENTRY_BYTES = 8;
export const TIME_ENTRY_BYTES = 12;

/** Grow-by-doubling column of u32 (offset index) or f64 (times). */
function grow<T extends Uint32Array | Float64Array>(a: T, need: number): T {
  if (need <= a.length) return a;
  const b = new (a.constructor as { new (n: number): T })(Math.max(need, a.length * 2, 16));
  b.set(a);
  return b;
}

export class OffsetIndex {
  count = 0;
  private rel = new Uint32Array(0);
  private pos = new Uint32Array(0);
  /** Entries [0, persisted) are in the file. */
  persisted = 0;

  append(relOffset: number, position: number): void {
    const n = this.count;
    if (n > 0 && (relOffset <= this.rel[n - 1] || position <= this.pos[n - 1])) return;
    this.rel = grow(this.rel, n + 1);
    this.pos = grow(this.pos, n + 1);
    this.rel[n] = relOffset;
    this.pos[n] = position;
    this.count = n + 1;
  }

  relAt(i: number): number {
    return this.rel[i];
  }

  positionAt(i: number): number {
    return this.pos[i];
  }

  lastPosition(): number {
    return this.count ? this.pos[this.count - 1] : 0;
  }

  /** Position of the last indexed batch starting at or below `relOffset` (0 when none). */
  floorPosition(relOffset: number): number {
    let lo = 0;
    let hi = this.count - 1;
    let best = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      if (this.rel[mid] <= relOffset) {
        best = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    return best < 0 ? 0 : this.pos[best];
  }

  /** Drops entries at or past `position` (after the log was truncated there). */
  truncateToPosition(position: number): void {
    while (this.count > 0 && this.pos[this.count - 1] >= position) this.count--;
    if (this.persisted > this.count) this.persisted = this.count;
  }

  /** The entries not yet in the file, encoded; marks them persisted. */
  takeUnpersisted(): { bytes: Uint8Array; filePosition: number } | null {
    if (this.persisted >= this.count) return null;
    const bytes = this.encode(this.persisted, this.count);
    const filePosition = this.persisted * OFFSET_ENTRY_BYTES;
    this.persisted = this.count;
    return { bytes, filePosition };
  }

  encode(from = 0, to = this.count): Uint8Array {
    const out = Buffer.allocUnsafe((to - from) * OFFSET_ENTRY_BYTES);
    for (let i = from, p = 0; i < to; i++, p += OFFSET_ENTRY_BYTES) {
      writeUint32(out, p, this.rel[i]);
      writeUint32(out, p + 4, this.pos[i]);
    }
    return out;
  }

  /** Parses a file's bytes; stops at a partial or non-increasing entry, or one at/after `logBytes`. */
  static decode(b: Uint8Array, logBytes: number): OffsetIndex {
    const idx = new OffsetIndex();
    for (let p = 0; p + OFFSET_ENTRY_BYTES <= b.length; p += OFFSET_ENTRY_BYTES) {
      const rel = readUint32(b, p);
      const pos = readUint32(b, p + 4);
      const n = idx.count;
      if (pos >= logBytes || (n > 0 && (rel <= idx.rel[n - 1] || pos <= idx.pos[n - 1])) || (n === 0 && pos === 0)) break;
      idx.append(rel, pos);
    }
    idx.persisted = idx.count;
    return idx;
  }

  memoryBytes(): number {
    return this.rel.byteLength + this.pos.byteLength;
  }
}

export class TimeIndex {
  count = 0;
  private time = new Float64Array(0);
  private rel = new Uint32Array(0);
  persisted = 0;

  append(appendTime: number, relOffset: number): void {
    const n = this.count;
    if (n > 0 && (appendTime <= this.time[n - 1] || relOffset <= this.rel[n - 1])) return;
    this.time = grow(this.time, n + 1);
    this.rel = grow(this.rel, n + 1);
    this.time[n] = appendTime;
    this.rel[n] = relOffset;
    this.count = n + 1;
  }

  firstTime(): number {
    return this.count ? this.time[0] : -1;
  }

  lastTime(): number {
    return this.count ? this.time[this.count - 1] : -1;
  }

  /** Relative offset of the last entry whose time is below `ts` (a batch to scan from), or -1 when none. */
  floorRelOffsetBefore(ts: number): number {
    let lo = 0;
    let hi = this.count - 1;
    let best = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      if (this.time[mid] < ts) {
        best = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    return best < 0 ? -1 : this.rel[best];
  }

  truncateToRelOffset(relOffset: number): void {
    while (this.count > 0 && this.rel[this.count - 1] >= relOffset) this.count--;
    if (this.persisted > this.count) this.persisted = this.count;
  }

  takeUnpersisted(): { bytes: Uint8Array; filePosition: number } | null {
    if (this.persisted >= this.count) return null;
    const bytes = this.encode(this.persisted, this.count);
    const filePosition = this.persisted * TIME_ENTRY_BYTES;
    this.persisted = this.count;
    return { bytes, filePosition };
  }

  encode(from = 0, to = this.count): Uint8Array {
    const out = Buffer.allocUnsafe((to - from) * TIME_ENTRY_BYTES);
    for (let i = from, p = 0; i < to; i++, p += TIME_ENTRY_BYTES) {
      writeInt64(out, p, this.time[i]);
      writeUint32(out, p + 8, this.rel[i]);
    }
    return out;
  }

  static decode(b: Uint8Array, maxRelOffset: number): TimeIndex {
    const idx = new TimeIndex();
    for (let p = 0; p + TIME_ENTRY_BYTES <= b.length; p += TIME_ENTRY_BYTES) {
      const t = readInt64(b, p);
      const rel = readUint32(b, p + 8);
      const n = idx.count;
      if (t < 0 || rel > maxRelOffset || (n > 0 && (t <= idx.time[n - 1] || rel <= idx.rel[n - 1]))) break;
      idx.append(t, rel);
    }
    idx.persisted = idx.count;
    return idx;
  }

  memoryBytes(): number {
    return this.time.byteLength + this.rel.byteLength;
  }
}

/**
 * The sparse-index rule, for every writer of a segment's indexes (append,
 * rebuild, compaction): a segment's first batch gets a time-index entry;
 * after it, a batch starting at least `intervalBytes` past the last indexed
 * one gets an entry in both indexes. Returns the position of the last
 * indexed batch.
 */
export function indexBatch(index: OffsetIndex, timeIndex: TimeIndex, relOffset: number, position: number, appendTime: number, lastIndexed: number, intervalBytes: number): number {
  if (position === 0) {
    timeIndex.append(appendTime, relOffset);
    return lastIndexed;
  }
  if (position - lastIndexed < intervalBytes) return lastIndexed;
  index.append(relOffset, position);
  timeIndex.append(appendTime, relOffset);
  return position;
}
