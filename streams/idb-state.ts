/**
 * State kept in IndexedDB (browsers), beside the changelog: after every
 * flush whose changelog write is acknowledged, the changed entries, the
 * progress record and the changelog offset after it are written in one
 * IndexedDB transaction. A task that starts (after a reload) loads that
 * snapshot and reads only the changelog's tail from that offset up to its
 * fence, instead of the whole changelog.
 *
 * The snapshot is a cache of the changelog, never ahead of it: it is written
 * only once the changelog holds the same flush, and a transaction is all or
 * nothing, so it is always the state as of one progress record. Whatever
 * other owners wrote since (another tab, another instance) is in the tail.
 * A snapshot past the changelog's end (the topic was deleted and created
 * again) is thrown away and the whole changelog is read.
 *
 * The working copy stays in memory (steps read state synchronously); the
 * database holds what survives a reload.
 */
import type { Progress } from './changelog.ts';

export interface LocalSnapshot {
  stores: Map<string, Map<string, unknown>>;
  progress: Progress;
  /** Changelog offset after the progress record: where the tail starts. */
  next: number;
  entries: number;
}

/** Where a task's state is kept between runs, besides the changelog. */
export interface LocalState {
  load(changelog: string, partition: number): Promise<LocalSnapshot | undefined>;
  /** Entries changed by one flush (undefined = deleted), its progress record, and the changelog offset after it. */
  save(changelog: string, partition: number, entries: ReadonlyArray<[store: string, key: string, value: unknown]>, progress: Progress, next: number): Promise<void>;
  /** Forgets a partition's snapshot (it did not match the changelog). */
  clear(changelog: string, partition: number): Promise<void>;
  close(): void;
}

const ENTRIES = 'entries';
const PROGRESS = 'progress';
const DB_VERSION = 1;

function req<T>(r: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(r.error ?? new Error('IndexedDB request failed'));
  });
}

function done(tx: IDBTransaction): Promise<void> {
  return new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve();
    tx.onerror = () => reject(tx.error ?? new Error('IndexedDB transaction failed'));
    tx.onabort = () => reject(tx.error ?? new Error('IndexedDB transaction aborted'));
  });
}

/** Keys of one partition's entries: [changelog, partition, store, key]; arrays sort after strings, hence the upper bound. */
function partitionRange(changelog: string, partition: number): IDBKeyRange {
  return IDBKeyRange.bound([changelog, partition], [changelog, partition, []]);
}

export class IdbLocalState implements LocalState {
  private readonly db: Promise<IDBDatabase>;

  /** One database per application: `tributary-streams-<applicationId>`. */
  constructor(applicationId: string) {
    if (typeof indexedDB === 'undefined') throw new Error('IndexedDB is not available here');
    const open = indexedDB.open(`tributary-streams-${applicationId}`, DB_VERSION);
    open.onupgradeneeded = () => {
      open.result.createObjectStore(ENTRIES);
      open.result.createObjectStore(PROGRESS);
    };
    this.db = req(open);
  }

  async load(changelog: string, partition: number): Promise<LocalSnapshot | undefined> {
    const db = await this.db;
    const tx = db.transaction([ENTRIES, PROGRESS], 'readonly');
    const [head, keys, values] = await Promise.all([
      req(tx.objectStore(PROGRESS).get([changelog, partition])) as Promise<{ progress: Progress; next: number } | undefined>,
      req(tx.objectStore(ENTRIES).getAllKeys(partitionRange(changelog, partition))),
      req(tx.objectStore(ENTRIES).getAll(partitionRange(changelog, partition))),
    ]);
    if (!head) return undefined;
    const stores = new Map<string, Map<string, unknown>>();
    keys.forEach((k, i) => {
      const [, , store, key] = k as [string, number, string, string];
      let m = stores.get(store);
      if (!m) stores.set(store, (m = new Map()));
      m.set(key, values[i]);
    });
    return { stores, progress: head.progress, next: head.next, entries: keys.length };
  }

  async save(changelog: string, partition: number, entries: ReadonlyArray<[string, string, unknown]>, progress: Progress, next: number): Promise<void> {
    const db = await this.db;
    const tx = db.transaction([ENTRIES, PROGRESS], 'readwrite');
    const es = tx.objectStore(ENTRIES);
    for (const [store, key, value] of entries) {
      if (value === undefined) es.delete([changelog, partition, store, key]);
      else es.put(value, [changelog, partition, store, key]);
    }
    tx.objectStore(PROGRESS).put({ progress, next }, [changelog, partition]);
    await done(tx);
  }

  async clear(changelog: string, partition: number): Promise<void> {
    const db = await this.db;
    const tx = db.transaction([ENTRIES, PROGRESS], 'readwrite');
    tx.objectStore(ENTRIES).delete(partitionRange(changelog, partition));
    tx.objectStore(PROGRESS).delete([changelog, partition]);
    await done(tx);
  }

  close(): void {
    void this.db.then((db) => db.close()).catch(() => undefined);
  }
}
