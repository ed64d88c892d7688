/**
 * Small byte arrays carved out of shared slabs: one allocation per slab
 * instead of one per value (an ArrayBuffer each, and its collection, was the
 * largest single cost of a burst of sends, profiled in Chromium and Node).
 * A view keeps its whole slab alive, so what is pinned is about the bytes of
 * the views still alive when they are taken and dropped in about the same
 * order; arrays larger than `maxShared` get a buffer of their own.
 */
export class SlabPool {
  private slab: Uint8Array;
  private used = 0;

  constructor(
    private readonly slabBytes: number,
    private readonly maxShared = slabBytes >> 3,
  ) {
    this.slab = new Uint8Array(slabBytes);
  }

  /** `n` fresh zeroed bytes. */
  take(n: number): Uint8Array {
    if (n > this.maxShared) return new Uint8Array(n);
    if (this.used + n > this.slabBytes) {
      this.slab = new Uint8Array(this.slabBytes);
      this.used = 0;
    }
    const b = this.slab.subarray(this.used, this.used + n);
    this.used += n;
    return b;
  }
}
