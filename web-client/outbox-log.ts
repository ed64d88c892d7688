/**
 * The live events of an outbox in id order, for the stores that hold them
 * in memory (memory, file). Ids only grow, so an event's slot is `id - base`
 * in an array: lookup, removal and "the events after id n" cost O(1) and
 * O(what is returned), where a Map costs a scan from its oldest entry.
 * Removed slots are left empty; the array is cut once its dead front is
 * over half of it.
 */
import type { OutboxEvent } from './outbox.ts';

/** Dead slots at the front tolerated before the array is cut. */
const CUT_MIN_SLOTS = 4096;

export class EventLog {
  private slots: Array<OutboxEvent | undefined> = [];
  /** Id of slots[0]. */
  private base = 0;
  /** Index of the first slot that may be live. */
  private head = 0;
  private live = 0;

  get size(): number {
    return this.live;
  }

  /** Adds an event whose id is above every id added before (gaps allowed). */
  add(e: OutboxEvent): void {
    if (this.head === this.slots.length) {
      // Empty: start afresh at this id.
      this.slots = [];
      this.base = e.id;
      this.head = 0;
    }
    const i = e.id - this.base;
    if (i < this.slots.length) throw new Error(`outbox ids must grow: ${e.id} after ${this.base + this.slots.length - 1}`);
    while (this.slots.length < i) this.slots.push(undefined);
    this.slots.push(e);
    this.live++;
  }

  get(id: number): OutboxEvent | undefined {
    const i = id - this.base;
    return i >= this.head && i < this.slots.length ? this.slots[i] : undefined;
  }

  /** Replaces the stored object of an event (same id). */
  set(e: OutboxEvent): void {
    const i = e.id - this.base;
    if (i >= this.head && i < this.slots.length && this.slots[i]) this.slots[i] = e;
  }

  has(id: number): boolean {
    return this.get(id) !== undefined;
  }

  /** Removes an event; false when it was not there. */
  delete(id: number): boolean {
    const i = id - this.base;
    if (i < this.head || i >= this.slots.length || this.slots[i] === undefined) return false;
    this.slots[i] = undefined;
    this.live--;
    if (i === this.head) {
      let h = this.head + 1;
      while (h < this.slots.length && this.slots[h] === undefined) h++;
      this.head = h;
      if (h >= CUT_MIN_SLOTS && h * 2 > this.slots.length) {
        this.slots = this.slots.slice(h);
        this.base += h;
        this.head = 0;
      }
    }
    return true;
  }

  /** Up to `max` live events with id > afterId, in id order. */
  after(afterId: number, max: number): OutboxEvent[] {
    const out: OutboxEvent[] = [];
    const slots = this.slots;
    for (let i = Math.max(this.head, afterId + 1 - this.base); i < slots.length && out.length < max; i++) {
      const e = slots[i];
      if (e !== undefined) out.push(e);
    }
    return out;
  }

  /** How many live events have id <= maxId. */
  countThrough(maxId: number): number {
    const end = maxId - this.base + 1;
    if (end >= this.slots.length) return this.live;
    let n = 0;
    for (let i = this.head; i < end; i++) if (this.slots[i] !== undefined) n++;
    return n;
  }

  *values(): IterableIterator<OutboxEvent> {
    for (let i = this.head; i < this.slots.length; i++) {
      const e = this.slots[i];
      if (e !== undefined) yield e;
    }
  }
}
