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

  /**
   * A view of `max` free bytes where the next `take` starts, without taking
   * them (null when `max` is over `maxShared`): for an encoder that knows only
   * an upper bound of its size (UTF-8 of a string), writes there, then takes
   * what it wrote. The next `take(n)`, n <= max, returns those bytes as
   * written; what was reserved and not taken is overwritten by later takes.
   */
  reserve(max: number): Uint8Array | null {
    if (max > this.maxShared) return null;
    if (this.used + max > this.slabBytes) {
      this.slab = new Uint8Array(this.slabBytes);
      this.used = 0;
    }
    return this.slab.subarray(this.used, this.used + max);
  }

  /** `n` fresh bytes: zeroed, unless a `reserve` wrote there first. */
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
