/**
 * The changelog of a task root (`<app>-<name>-changelog`, compacted, one
 * partition per input partition) holds three kinds of record:
 *
 * - a store entry, key `s\0<store>\0<key>`, value `{ v }` (null = deleted);
 * - a progress record, key `\0progress`, written last in every flush: the
 *   input offset the stores now reflect, the next output sequences and the
 *   stream times;
 * - a fence, key `\0fence`, written by a new owner before it reads the
 *   partition back: the offset its ack returns is where the restore stops.
 *
 * Entries count only once a progress record follows them. Entries after the
 * last progress record belong to a flush that never finished (its owner
 * died): the restore ignores them and the new owner writes the committed
 * values of those keys again (the repair), so compaction keeps the right one.
 */
import type { SendEvent } from './client-contract.ts';
import type { Header } from '../protocol/index.ts';
import type { OutputLane } from './output-lanes.ts';
import type { SequenceEntry } from './sequences.ts';

const NO_HEADERS: readonly Header[] = [];

const PROGRESS_KEY = '\u0000progress';
const FENCE_KEY = '\u0000fence';
const ENTRY_PREFIX = 's\u0000';

export interface Progress {
  /** Next input offset to process: everything below it is in the stores and its outputs are acked. */
  offset: number;
  seqs: SequenceEntry[];
  /** Stream time per windowed store. */
  times: Record<string, number>;
  /** Which owner wrote it (for diagnosis). */
  epoch: string;
}

export function entryEvent(store: string, key: string, value: unknown, timestamp: number): SendEvent {
  return { key: `${ENTRY_PREFIX}${store}\u0000${key}`, value: value === undefined ? null : { v: value }, timestamp };
}

/**
 * Writes a store entry into a changelog lane: the value `{ v }` built as
 * text around the entry's JSON (no object per entry), the same bytes as
 * entryEvent's value encodes to.
 */
export function pushEntry(lane: OutputLane, store: string, key: string, value: unknown, timestamp: number): void {
  const k = `${ENTRY_PREFIX}${store}\u0000${key}`;
  if (value === undefined) return lane.push(k, null, timestamp, NO_HEADERS);
  const text = JSON.stringify(value);
  // A value JSON leaves out (a function, a symbol) is pushed as the object, so it fails or drops exactly as before.
  if (text === undefined) return lane.push(k, { v: value }, timestamp, NO_HEADERS);
  lane.pushJson(k, `{"v":${text}}`, timestamp);
}

export function progressEvent(p: Progress, timestamp: number): SendEvent {
  return { key: PROGRESS_KEY, value: p, timestamp };
}

export function fenceEvent(epoch: string, timestamp: number): SendEvent {
  return { key: FENCE_KEY, value: { epoch }, timestamp };
}

export interface RestoredState {
  stores: Map<string, Map<string, unknown>>;
  progress: Progress | undefined;
  /** Keys whose latest changelog entry is not committed: write their committed value again. */
  toRepair: Map<string, Set<string>>;
  records: number;
}

/** Replays changelog records in offset order into committed state (a pure state machine, tested as such). */
export class ChangelogRestorer {
  private readonly stores = new Map<string, Map<string, unknown>>();
  private pending: Array<[store: string, key: string, value: unknown]> = [];
  private readonly aborted = new Map<string, Set<string>>();
  private progress: Progress | undefined;
  private records = 0;

  /** Starts from a snapshot taken right after a progress record (IndexedDB), before the tail that follows it is applied. */
  seed(stores: Map<string, Map<string, unknown>>, progress: Progress): void {
    for (const [name, entries] of stores) {
      const m = this.storeMap(name);
      for (const [k, v] of entries) m.set(k, v);
    }
    this.progress = progress;
  }

  apply(key: string | Uint8Array | null, value: unknown): void {
    this.records++;
    if (typeof key !== 'string') return;
    if (key === PROGRESS_KEY) {
      if (value === null || typeof value !== 'object') return;
      for (const [store, k, v] of this.pending) {
        const m = this.storeMap(store);
        if (v === undefined) m.delete(k);
        else m.set(k, v);
      }
      this.pending = [];
      this.aborted.clear();
      this.progress = value as Progress;
      return;
    }
    if (key === FENCE_KEY) {
      this.abortPending();
      return;
    }
    if (!key.startsWith(ENTRY_PREFIX)) return;
    const sep = key.indexOf('\u0000', ENTRY_PREFIX.length);
    if (sep < 0) return;
    const store = key.slice(ENTRY_PREFIX.length, sep);
    const k = key.slice(sep + 1);
    const v = value === null || typeof value !== 'object' ? undefined : (value as { v?: unknown }).v;
    this.pending.push([store, k, v]);
  }

  private abortPending(): void {
    for (const [store, k] of this.pending) {
      let s = this.aborted.get(store);
      if (!s) this.aborted.set(store, (s = new Set()));
      s.add(k);
    }
    this.pending = [];
  }

  private storeMap(store: string): Map<string, unknown> {
    let m = this.stores.get(store);
    if (!m) this.stores.set(store, (m = new Map()));
    return m;
  }

  finish(): RestoredState {
    this.abortPending();
    return { stores: this.stores, progress: this.progress, toRepair: this.aborted, records: this.records };
  }
}
