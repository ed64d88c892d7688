/**
 * Token expiries of every open connection on one timer.
 *
 * A timer per connection costs a Timeout, a closure and its context (about
 * 250 bytes of heap each, measured with heap snapshots at 5,000
 * connections), and Node keeps a timer list per distinct delay. Here waiters
 * are grouped by the instant they are due — tokens carry `exp` in whole
 * seconds, so a fleet's expiries share few instants — and one timer is armed
 * for the earliest. A waiter costs one Set entry.
 *
 * The instants wait in a binary min-heap. A group emptied by `remove` leaves
 * its instant in the heap (skipped when reached); the heap is rebuilt from
 * the live groups when stale entries outnumber them, so connections that
 * come and go cannot grow it.
 */
import { MAX_TIMER_DELAY_MS } from './principal.ts';

/** Stale heap entries tolerated beyond the live groups before the heap is rebuilt. */
const STALE_HEAP_SLACK = 64;

export class ExpirySchedule<T> {
  private readonly groups = new Map<number, Set<T>>();
  private heap: number[] = [];
  private timer: NodeJS.Timeout | null = null;
  /** The instant the timer is armed for (Infinity: not armed). */
  private armedAtMs = Infinity;

  /**
   * @param onDue called once for each waiter when its instant has come (it is
   *   already removed: add it again to wait for a later instant)
   * @param now the clock, ms since the epoch (tests)
   */
  constructor(
    private readonly onDue: (waiter: T, atMs: number) => void,
    private readonly now: () => number = Date.now,
  ) {}

  /** Waiters currently scheduled. */
  get size(): number {
    let n = 0;
    for (const g of this.groups.values()) n += g.size;
    return n;
  }

  /** Whether its one timer is pending. */
  get armed(): boolean {
    return this.timer !== null;
  }

  /** Calls `onDue(waiter, atMs)` at `atMs` (at once if that has passed), unless removed before. */
  add(waiter: T, atMs: number): void {
    let group = this.groups.get(atMs);
    if (!group) {
      group = new Set();
      this.groups.set(atMs, group);
      this.push(atMs);
    }
    group.add(waiter);
    if (atMs < this.armedAtMs) this.arm();
  }

  /** Forgets `waiter` scheduled at `atMs` (a no-op if it is not). */
  remove(waiter: T, atMs: number): void {
    const group = this.groups.get(atMs);
    if (!group?.delete(waiter) || group.size > 0) return;
    this.groups.delete(atMs);
    if (this.heap.length > 2 * this.groups.size + STALE_HEAP_SLACK) this.rebuild();
    if (this.groups.size === 0) this.disarm();
  }

  /** Stops the timer and forgets every waiter (shutdown). */
  clear(): void {
    this.groups.clear();
    this.heap = [];
    this.disarm();
  }

  private fire(): void {
    this.timer = null;
    this.armedAtMs = Infinity;
    const nowMs = this.now();
    while (this.heap.length > 0 && this.heap[0] <= nowMs) {
      const atMs = this.pop();
      const group = this.groups.get(atMs);
      if (!group) continue; // emptied by remove
      this.groups.delete(atMs);
      for (const waiter of group) this.onDue(waiter, atMs);
    }
    this.arm();
  }

  /** Arms the timer for the earliest live instant (dropping stale ones off the top). */
  private arm(): void {
    while (this.heap.length > 0 && !this.groups.has(this.heap[0])) this.pop();
    if (this.heap.length === 0) return this.disarm();
    const atMs = this.heap[0];
    if (this.timer && atMs >= this.armedAtMs) return;
    if (this.timer) clearTimeout(this.timer);
    // A delay beyond setTimeout's range fires early: fire() then finds nothing due and arms again.
    const delayMs = Math.min(MAX_TIMER_DELAY_MS, Math.max(0, atMs - this.now()));
    this.armedAtMs = atMs;
    this.timer = setTimeout(() => this.fire(), delayMs);
    // The hub's server keeps the process alive; a pending expiry alone must not.
    this.timer.unref();
  }

  private disarm(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.armedAtMs = Infinity;
  }

  private rebuild(): void {
    this.heap = [];
    for (const atMs of this.groups.keys()) this.push(atMs);
  }

  private push(atMs: number): void {
    const h = this.heap;
    let i = h.push(atMs) - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (h[parent] <= atMs) break;
      h[i] = h[parent];
      i = parent;
    }
    h[i] = atMs;
  }

  private pop(): number {
    const h = this.heap;
    const top = h[0];
    const last = h.pop()!;
    if (h.length === 0) return top;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= h.length) break;
      const r = l + 1;
      const child = r < h.length && h[r] < h[l] ? r : l;
      if (h[child] >= last) break;
      h[i] = h[child];
      i = child;
    }
    h[i] = last;
    return top;
  }
}
