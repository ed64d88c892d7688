/**
 * The live events of an outbox in id order, for the stores that hold them
 * in memory (memory, file). Ids only grow, so an event's slot is `id - base`
 * in an array: lookup, removal and "the events after id n" cost O(1) and
 * O(what is returned), where a Map costs a scan from its oldest entry.
 * Removed slots are left empty; the array is cut once its dead front is
 * over half of it.
 *
 * The file outbox's send() calls write their events straight into a journal
 * group (outbox-journal.ts `AppendGroup`); once on disk, a group's events
 * are kept here as those bytes (`addPacked`) and made into objects only when
 * something asks for them (the drain's `after`, a `get`), in id order: every
 * packed id is above every id held as an object.
 */
import type { OutboxEvent } from './outbox.ts';
import type { Crc32c } from '../protocol/index.ts';
import type { AppendCursor } from './outbox-journal.ts';

/** Events of one written append group not made into objects yet: ids nextId..lastId, in the cursor's order. */
export interface PackedBlock {
  cur: AppendCursor;
  nextId: number;
  lastId: number;
}

/** Dead slots at the front tolerated before the array is cut. */
const CUT_MIN_SLOTS = 4096;

export class EventLog {
  private slots: Array<OutboxEvent | undefined> = [];
  /** Id of slots[0]. */
  private base = 0;
  /** Index of the first slot that may be live. */
  private head = 0;
  private live = 0;
  private packed: PackedBlock[] = [];
  private packedCount = 0;

  get size(): number {
    return this.live + this.packedCount;
  }

  /** Adds the `count` events of an append entry whose ids are firstId, firstId + 1, …, above every id added before. */
  addPacked(cur: AppendCursor, firstId: number, count: number): void {
    if (count <= 0) return;
    this.packed.push({ cur, nextId: firstId, lastId: firstId + count - 1 });
    this.packedCount += count;
  }

  /**
   * Takes the lowest live events out of the log for the file outbox's
   * segments (outbox-file-segments.ts), which hold them from then on: up to
   * `max` events held as objects, in id order, or, when none is left, the
   * first packed group whole (its cursor at the next event not made an
   * object yet). Ids of what is taken are below every id left.
   */
  takeFront(max: number): { objects: OutboxEvent[] } | { packed: PackedBlock } | undefined {
    if (this.live > 0) {
      const objects: OutboxEvent[] = [];
      for (let i = this.head; i < this.slots.length && objects.length < max; i++) {
        const e = this.slots[i];
        if (e !== undefined) objects.push(e);
      }
      for (const e of objects) this.delete(e.id);
      return { objects };
    }
    const b = this.packed.shift();
    if (!b) return undefined;
    this.packedCount -= b.lastId - b.nextId + 1;
    return { packed: b };
  }

  /** Makes the next packed event an object (in the slots); undefined when none is left. */
  private unpackOne(): OutboxEvent | undefined {
    const b = this.packed[0];
    if (!b) return undefined;
    const e = b.cur.next();
    if (e.id !== b.nextId) throw new Error(`outbox journal group holds id ${e.id} where ${b.nextId} was written`);
    b.nextId++;
    this.packedCount--;
    if (b.nextId > b.lastId) this.packed.shift();
    this.put(e);
    return e;
  }

  /** Makes every packed event with id <= maxId an object. */
  private unpackThrough(maxId: number): void {
    while (this.packed.length && this.packed[0].nextId <= maxId) this.unpackOne();
  }

  /** Adds an event whose id is above every id added before (gaps allowed). */
  add(e: OutboxEvent): void {
    this.unpackThrough(Infinity);
    this.put(e);
  }

  private put(e: OutboxEvent): void {
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
    if (this.packed.length && id >= this.packed[0].nextId) this.unpackThrough(id);
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
    if (this.packed.length && id >= this.packed[0].nextId) this.unpackThrough(id);
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
    while (out.length < max && this.packed.length) {
      const e = this.unpackOne()!;
      if (e.id > afterId) out.push(e);
    }
    return out;
  }

  /** How many live events have id <= maxId. */
  countThrough(maxId: number): number {
    let n = 0;
    for (const b of this.packed) if (maxId >= b.nextId) n += Math.min(maxId, b.lastId) - b.nextId + 1;
    const end = maxId - this.base + 1;
    if (end >= this.slots.length) return n + this.live;
    for (let i = this.head; i < end; i++) if (this.slots[i] !== undefined) n++;
    return n;
  }

  /** The live events held as objects (every packed id is above theirs), in id order; see packedEntries. */
  *objects(): IterableIterator<OutboxEvent> {
    for (let i = this.head; i < this.slots.length; i++) {
      const e = this.slots[i];
      if (e !== undefined) yield e;
    }
  }

  /** The packed events as append entries, above every object's id (a snapshot writes them without making objects). */
  packedEntries(crc: Crc32c): Uint8Array[] {
    const out: Uint8Array[] = [];
    for (const b of this.packed) {
      const entry = b.cur.rest(crc);
      if (entry) out.push(entry);
    }
    return out;
  }
}
