/**
 * Buffers for the memory outbox's record batches, handed back once their
 * segment is acked and removed (outbox-memory.ts `take`).
 *
 * A busy producer seals a ~100 KB batch per partition every few
 * milliseconds; a fresh `Uint8Array` each time is zero-filled and
 * page-faulted in (a quarter of sealing's CPU in a profile, h13m3). Taken
 * from here instead, a buffer is written whole before it is sent (the
 * batch's every byte, and the frame's fields in the room before it), so it
 * need not be zeroed: in Node it comes from `Buffer.allocUnsafeSlow`.
 *
 * A buffer comes back only from a segment that is gone from the outbox:
 * acked on the connection the drain sends on, whose lane never has one
 * segment in two requests at once (a refused request's followers are
 * re-sent only after their answers). A send on a connection that ended
 * before is not waited for: its socket was closed (ws sends what it had
 * queued before the close frame) before the drain's next session began.
 * The segment's `batch` is emptied on the way back, so a stray later use
 * of it sends nothing rather than another batch's bytes.
 */

/** Smallest buffer handed out (smaller batches share its size class). */
const MIN_BYTES = 4 * 1024;
/** Larger batches are not pooled (the hub's frame limit keeps batches near a megabyte at most). */
const MAX_POOLED_BYTES = 4 * 1024 * 1024;
/** Bytes kept in the pool at most, over all size classes. */
const MAX_KEPT_BYTES = 16 * 1024 * 1024;

/** Free buffers by size class (log2 of their length). */
const free: Uint8Array[][] = [];
let keptBytes = 0;

type AllocUnsafe = (size: number) => Uint8Array;
const allocUnsafe: AllocUnsafe | undefined = (globalThis as { Buffer?: { allocUnsafeSlow?: AllocUnsafe } }).Buffer?.allocUnsafeSlow;

function sizeClass(bytes: number): number {
  return Math.max(12, 32 - Math.clz32(bytes - 1));
}

/**
 * A buffer of at least `bytes` (its length is a power of two), not zeroed:
 * the caller writes every byte it sends.
 */
export function takeBatchBuffer(bytes: number): Uint8Array {
  if (bytes > MAX_POOLED_BYTES) return new Uint8Array(bytes);
  const c = sizeClass(Math.max(bytes, MIN_BYTES));
  const buf = free[c]?.pop();
  if (buf) {
    keptBytes -= buf.length;
    return buf;
  }
  const size = 2 ** c;
  if (!allocUnsafe) return new Uint8Array(size);
  // A plain Uint8Array over the Buffer's memory: a Buffer's slice() is a view, where callers copy with slice().
  const b = allocUnsafe(size);
  return new Uint8Array(b.buffer, b.byteOffset, b.length);
}

/** Hands back the whole buffer a batch view came from (`takeBatchBuffer`'s); nothing may use it afterwards. */
export function giveBatchBuffer(view: Uint8Array): void {
  const len = view.buffer.byteLength;
  // Only whole buffers of a size class (a Node Buffer from a shared slab is never one: allocUnsafeSlow's are not pooled).
  if (len < MIN_BYTES || len > MAX_POOLED_BYTES || (len & (len - 1)) !== 0 || keptBytes + len > MAX_KEPT_BYTES) return;
  const whole = new Uint8Array(view.buffer, 0, len);
  const c = sizeClass(len);
  (free[c] ??= []).push(whole);
  keptBytes += len;
}
