/**
 * The newest batches of a partition kept in memory (up to `maxBytes`), so
 * that consumers following the tip are served without touching the disk.
 * The batches are the very buffers that were appended (stamped in place).
 */
import { TributaryError } from '../../protocol/errors.ts';

/** How long after a read the cache keeps taking borrowed batches (wanted()). */
const WANTED_MS = 30_000;

export class TailCache {
  private batches: Uint8Array[] = [];
  private bases: number[] = [];
  private lasts: number[] = [];
  private head = 0;
  bytes = 0;
  private reads = 0;
  private readsSeen = 0;
  private readSeenAt = -Infinity;

  constructor(private readonly maxBytes: number) {}

  /**
   * Whether an append of borrowed bytes should copy them into a buffer this
   * cache keeps (else into reused write memory, and skip()): while somebody
   * read this partition in the last WANTED_MS, as the appends saw it at `now`.
   * A partition only produced to keeps no tail, and its first reader after a
   * quiet spell reads the disk until the cache has its newest batches again.
   */
  wanted(now: number): boolean {
    if (this.maxBytes <= 0) return false;
    if (this.reads !== this.readsSeen) {
      this.readsSeen = this.reads;
      this.readSeenAt = now;
      return true;
    }
    return now - this.readSeenAt < WANTED_MS;
  }

  /** An append this cache does not hold: what it holds is no longer the tail, so it is dropped (it must have no gap). */
  skip(): void {
    if (this.batches.length > 0) this.clear();
  }

  /** Offset of the oldest cached batch, or Infinity when empty. */
  get firstOffset(): number {
    return this.head < this.bases.length ? this.bases[this.head] : Infinity;
  }

  push(batch: Uint8Array, base: number, last: number): void {
    if (this.maxBytes <= 0) return;
    this.batches.push(batch);
    this.bases.push(base);
    this.lasts.push(last);
    this.bytes += batch.length;
    while (this.bytes > this.maxBytes && this.head < this.batches.length) {
      this.bytes -= this.batches[this.head].length;
      this.head++;
    }
    // Compact the arrays once the dead prefix dominates (amortised O(1)).
    if (this.head > 1024 && this.head * 2 > this.batches.length) {
      this.batches = this.batches.slice(this.head);
      this.bases = this.bases.slice(this.head);
      this.lasts = this.lasts.slice(this.head);
      this.head = 0;
    }
  }

  /** Whole batches from the one holding `offset`, below `highWatermark`; null when not cached. */
  read(offset: number, maxBytes: number, highWatermark: number): { bytes: Uint8Array; nextOffset: number } | null {
    this.reads++;
    if (offset < this.firstOffset) return null;
    let lo = this.head;
    let hi = this.lasts.length - 1;
    let at = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      if (this.lasts[mid] >= offset) {
        at = mid;
        hi = mid - 1;
      } else lo = mid + 1;
    }
    if (at < 0 || this.bases[at] >= highWatermark) return null;
    let end = at;
    let total = this.batches[at].length;
    while (end + 1 < this.batches.length && this.bases[end + 1] < highWatermark && total + this.batches[end + 1].length <= maxBytes) {
      end++;
      total += this.batches[end].length;
    }
    if (this.lasts[end] >= highWatermark) throw new TributaryError('INTERNAL', 'a batch straddles the high watermark');
    const bytes = end === at ? this.batches[at] : Buffer.concat(this.batches.slice(at, end + 1), total);
    return { bytes, nextOffset: this.lasts[end] + 1 };
  }

  /** Drops batches below `offset` (their segment was rewritten by compaction). */
  dropBelow(offset: number): void {
    while (this.head < this.batches.length && this.bases[this.head] < offset) {
      this.bytes -= this.batches[this.head].length;
      this.head++;
    }
  }

  /** Drops batches at or above `offset` (appends that failed). */
  truncateFrom(offset: number): void {
    while (this.batches.length > this.head && this.bases[this.bases.length - 1] >= offset) {
      this.bytes -= this.batches.pop()!.length;
      this.bases.pop();
      this.lasts.pop();
    }
  }

  clear(): void {
    this.batches = [];
    this.bases = [];
    this.lasts = [];
    this.head = 0;
    this.bytes = 0;
  }
}
