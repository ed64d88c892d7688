/**
 * The draining tab's view of the IndexedDB outbox's chunks (outbox-idb.ts).
 *
 * Only the tab that holds the drain lease (tabs.ts) assigns, removes and
 * fails events, and only events it has read. So what its reads found about
 * a chunk (state, gone list, assignments), with its own changes applied,
 * is what the database holds, and so are 'pseqs' and 'left', which only it
 * writes. With that view, an assignment or a removal is a transaction of
 * writes alone: no read inside it waits for this page's main thread (busy
 * with the drain) while the transaction holds its stores, and the next
 * transaction can be issued before this one commits (IndexedDB runs them in
 * the order they were created). Profiled in a drain of 50,000 events on a
 * loaded machine, the readwrite transactions that read first stayed open
 * 80–290 ms each and the drain waited on them one after the other.
 *
 * A change is applied to the view as its transaction is issued. A
 * transaction that fails, or a change made without the view (a failure for
 * good, an event whose chunk the view does not know), drops the view
 * (`reset`): the next read starts it again from the database, and until
 * then the store reads inside its transactions as before. A read's results
 * join the view only for chunks it does not know, and only if no reset came
 * between the read's transaction and its results (`gen`).
 */
import { chunkOf, type ChunkAssign, type ChunkState, type Left } from './outbox-idb-schema.ts';

export class HeldChunks {
  /** States of the chunks read since the view started, sorted by first; contiguous in the database. */
  readonly states: ChunkState[] = [];
  private readonly gone = new Map<number, Set<number>>();
  private readonly assigned = new Map<number, ChunkAssign>();
  /** The lowest and highest id of the chunks learned (dropped ones included; 0: none yet). */
  private minKnown = 0;
  private maxKnown = 0;
  left?: Left;
  pseqs?: Record<string, number>;
  /** Bumped by every reset: a read's results join only the view it began with. */
  gen = 0;

  reset(): void {
    this.states.length = 0;
    this.gone.clear();
    this.assigned.clear();
    this.minKnown = 0;
    this.maxKnown = 0;
    this.left = undefined;
    this.pseqs = undefined;
    this.gen++;
  }

  /** The view is complete enough for writes alone: counters known and some chunks held. */
  get ready(): boolean {
    return this.left !== undefined && this.pseqs !== undefined;
  }

  /** What a read found about one chunk (its state, gone ids, assignments), if the view does not have it yet. */
  learn(gen: number, s: ChunkState, gone: number[] | undefined, assign: ChunkAssign | undefined): void {
    if (gen !== this.gen || s.first <= this.maxKnown) return; // known (reads go forward; the view's copy is the newer)
    this.states.push({ first: s.first, last: s.last, live: s.live });
    if (this.minKnown === 0) this.minKnown = s.first;
    this.maxKnown = s.last;
    if (gone?.length) this.gone.set(s.first, new Set(gone));
    if (assign) this.assigned.set(s.first, assign);
  }

  /** What a read found of the counters only the draining tab writes. */
  learnCounters(gen: number, left: Left | undefined, pseqs: Record<string, number> | undefined): void {
    if (gen !== this.gen) return;
    this.left ??= { events: left?.events ?? 0, bytes: left?.bytes ?? 0 };
    this.pseqs ??= { ...pseqs };
  }

  /**
   * Whether every id's chunk is known (held or dropped): then a change to them needs no read. The
   * chunks learned are contiguous, so that is every id from the first held chunk's to `maxKnown`.
   */
  covers(ids: Iterable<number>): boolean {
    if (!this.ready || this.minKnown === 0) return false;
    for (const id of ids) if (id < this.minKnown || id > this.maxKnown) return false;
    return true;
  }

  /** The held state of the chunk holding `id`; undefined when that chunk is gone. */
  stateOf(id: number): ChunkState | undefined {
    const s = chunkOf(this.states, id);
    return s && id <= s.last ? s : undefined;
  }

  /** The gone ids of a held chunk (the set is the view's own: changes to it are changes to the view). */
  goneOf(first: number): Set<number> {
    let g = this.gone.get(first);
    if (!g) this.gone.set(first, (g = new Set()));
    return g;
  }

  assignOf(first: number): ChunkAssign | undefined {
    return this.assigned.get(first);
  }

  setAssign(first: number, as: ChunkAssign): void {
    this.assigned.set(first, as);
  }

  /** Chunks deleted: out of the view for good. */
  drop(firsts: readonly number[]): void {
    if (!firsts.length) return;
    const gone = new Set(firsts);
    for (const f of firsts) {
      this.gone.delete(f);
      this.assigned.delete(f);
    }
    // A read that began before the delete does not bring them back: learn() takes only chunks past maxKnown.
    const keep = this.states.filter((s) => !gone.has(s.first));
    this.states.length = 0;
    for (const s of keep) this.states.push(s);
  }

  /**
   * Events with id <= maxId the view knows are still in the outbox (a lower bound of the database's
   * count: events of chunks it has not read are not in it); 0 when it knows of none.
   */
  liveThrough(maxId: number): number {
    let n = 0;
    for (const s of this.states) {
      if (s.first > maxId) break;
      if (s.last <= maxId) n += s.live;
    }
    return n;
  }
}
