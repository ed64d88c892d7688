/**
 * Reused memory for the batches the engine copies out of a transport frame
 * (LogStore.appendBorrowed) and holds only until their group's write
 * completes. A fresh buffer per batch (Uint8Array.slice) cost the hub a
 * fifth of its CPU in the memory-outbox row: zero-filling ~100 KB and
 * faulting its pages in, since the allocator handed every copy fresh pages
 * (issue 13, bench/README.md "h13m6"). A buffer from here is only ever
 * referenced by the partition's write queue: nothing reads it after
 * `release`, which the write's completion calls once.
 */

/** Batches below this are copied into ordinary memory: a pool saves nothing there. */
const MIN_POOLED_BYTES = 8 << 10;
/** Batches above this too (a frame holds at most a few MiB). */
const MAX_POOLED_BYTES = 8 << 20;

/** A copy of `b` in fresh memory (a Buffer's own `slice` would be a view). */
export function copyOf(b: Uint8Array): Uint8Array {
  return Uint8Array.prototype.slice.call(b);
}

export class WriteBuffers {
  /** Free buffers by size class (a power of two). */
  private readonly free = new Map<number, ArrayBuffer[]>();
  private freeBytes = 0;
  /** Buffers handed out and not yet released (tests check it returns to 0). */
  lent = 0;

  constructor(private readonly maxFreeBytes: number) {}

  /** Whether `copy` of a batch of `bytes` takes pooled memory (which the holder must `release`). */
  pools(bytes: number): boolean {
    return bytes >= MIN_POOLED_BYTES && bytes <= MAX_POOLED_BYTES && this.maxFreeBytes > 0;
  }

  /** A copy of `src` in a pooled buffer (call only when `pools(src.length)`). */
  copy(src: Uint8Array): Uint8Array {
    const size = 1 << (32 - Math.clz32(src.length - 1));
    const ab = this.free.get(size)?.pop();
    if (ab) this.freeBytes -= size;
    const out = new Uint8Array(ab ?? new ArrayBuffer(size), 0, src.length);
    out.set(src);
    this.lent++;
    return out;
  }

  /** Returns a copy's memory; the caller must not touch `b` afterwards. */
  release(b: Uint8Array): void {
    this.lent--;
    const ab = b.buffer as ArrayBuffer;
    const size = ab.byteLength;
    if (this.freeBytes + size > this.maxFreeBytes) return;
    let list = this.free.get(size);
    if (!list) this.free.set(size, (list = []));
    list.push(ab);
    this.freeBytes += size;
  }
}
