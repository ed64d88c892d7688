/**
 * A task's state: key → value in memory, with the keys changed since the
 * last flush. The flush writes exactly those keys to the changelog (the
 * latest value each, a tombstone for a deleted one), so the changelog is a
 * compacted image of the store that a new owner replays to rebuild it.
 */
export class KeyValueStore<V = unknown> {
  private readonly map = new Map<string, V>();
  private readonly dirty = new Set<string>();

  constructor(readonly name: string) {}

  get(key: string): V | undefined {
    return this.map.get(key);
  }

  put(key: string, value: V): void {
    this.map.set(key, value);
    this.dirty.add(key);
  }

  delete(key: string): void {
    if (this.map.delete(key)) this.dirty.add(key);
  }

  has(key: string): boolean {
    return this.map.has(key);
  }

  get size(): number {
    return this.map.size;
  }

  entries(): IterableIterator<[string, V]> {
    return this.map.entries();
  }

  /** Marks a key to be written again at the next flush (its value, or a tombstone when absent). */
  touch(key: string): void {
    this.dirty.add(key);
  }

  /** The changed keys with their current values (undefined = deleted), and a clean slate. */
  takeDirty(): Array<[string, V | undefined]> {
    const out: Array<[string, V | undefined]> = [];
    for (const k of this.dirty) out.push([k, this.map.get(k)]);
    this.dirty.clear();
    return out;
  }

  get dirtyCount(): number {
    return this.dirty.size;
  }

  /** Restore: applies a changelog entry without marking it dirty. */
  restore(key: string, value: V | undefined): void {
    if (value === undefined) this.map.delete(key);
    else this.map.set(key, value);
  }
}
