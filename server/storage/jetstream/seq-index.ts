/**
 * Offset → stream sequence for one partition: a sorted, bounded list of
 * (sequence, base offset) pairs this hub has seen (its appends, the watch,
 * the stream's first and last message, and probes made by reads). When an
 * offset falls between two entries that are not neighbours, the reader
 * either searches the stream (probing messages by sequence) or reads from
 * the lower entry and skips whole batches below the offset.
 */
/** Entries kept per partition; past it every other entry is dropped (the index turns sparse, never wrong). */
const MAX_ENTRIES = 200_000;

export class SeqIndex {
  private seqs: number[] = [];
  private bases: number[] = [];

  get size(): number {
    return this.seqs.length;
  }

  add(seq: number, base: number): void {
    const n = this.seqs.length;
    if (n === 0 || seq > this.seqs[n - 1]) {
      this.seqs.push(seq);
      this.bases.push(base);
    } else {
      const i = this.floorSeq(seq);
      if (i >= 0 && this.seqs[i] === seq) return;
      this.seqs.splice(i + 1, 0, seq);
      this.bases.splice(i + 1, 0, base);
    }
    if (this.seqs.length > MAX_ENTRIES) this.thin();
  }

  dropBelow(seq: number): void {
    let i = 0;
    while (i < this.seqs.length && this.seqs[i] < seq) i++;
    if (i > 0) {
      this.seqs.splice(0, i);
      this.bases.splice(0, i);
    }
  }

  /**
   * The entries around `offset`: lo is the last entry whose base <= offset
   * (null if none), hi the first one after it (null if none).
   */
  around(offset: number): { lo: { seq: number; base: number } | null; hi: { seq: number; base: number } | null } {
    let a = 0;
    let b = this.bases.length - 1;
    let found = -1;
    while (a <= b) {
      const m = (a + b) >> 1;
      if (this.bases[m] <= offset) {
        found = m;
        a = m + 1;
      } else b = m - 1;
    }
    const lo = found >= 0 ? { seq: this.seqs[found], base: this.bases[found] } : null;
    const h = found + 1;
    const hi = h < this.seqs.length ? { seq: this.seqs[h], base: this.bases[h] } : null;
    return { lo, hi };
  }

  private floorSeq(seq: number): number {
    let a = 0;
    let b = this.seqs.length - 1;
    let found = -1;
    while (a <= b) {
      const m = (a + b) >> 1;
      if (this.seqs[m] <= seq) {
        found = m;
        a = m + 1;
      } else b = m - 1;
    }
    return found;
  }

  private thin(): void {
    const last = this.seqs.length - 1;
    this.seqs = this.seqs.filter((_, i) => i % 2 === 0 || i === last);
    this.bases = this.bases.filter((_, i) => i % 2 === 0 || i === last);
  }
}
