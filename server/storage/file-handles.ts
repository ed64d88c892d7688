/**
 * A bounded LRU of read-only file descriptors for closed segments. Readers
 * acquire a descriptor and release it when their read is done; an evicted
 * descriptor is closed once its last reader releases it, so eviction never
 * pulls a descriptor out from under a read in flight.
 */
import type { StorageIo } from './io.ts';

interface Entry {
  path: string;
  fd: Promise<number>;
  refs: number;
  evicted: boolean;
}

export class FileHandleCache {
  private readonly entries = new Map<string, Entry>();

  constructor(
    private readonly io: StorageIo,
    private readonly maxOpen: number,
  ) {}

  get size(): number {
    return this.entries.size;
  }

  async acquire(path: string): Promise<{ fd: number; release: () => void }> {
    let e = this.entries.get(path);
    if (e) {
      // Touch: re-insert at the young end of the Map's order.
      this.entries.delete(path);
      this.entries.set(path, e);
    } else {
      e = { path, fd: this.io.open(path, 'r'), refs: 0, evicted: false };
      this.entries.set(path, e);
      this.evictOverflow();
    }
    const entry = e;
    entry.refs++;
    let fd: number;
    try {
      fd = await entry.fd;
    } catch (err) {
      entry.refs--;
      if (this.entries.get(path) === entry) this.entries.delete(path);
      throw err;
    }
    let released = false;
    return {
      fd,
      release: () => {
        if (released) return;
        released = true;
        entry.refs--;
        if (entry.evicted && entry.refs === 0) this.closeEntry(entry);
      },
    };
  }

  /** Forgets a path (segment deleted or replaced by compaction); closes when unused. */
  invalidate(path: string): void {
    const e = this.entries.get(path);
    if (!e) return;
    this.entries.delete(path);
    e.evicted = true;
    if (e.refs === 0) this.closeEntry(e);
  }

  async closeAll(): Promise<void> {
    const all = [...this.entries.values()];
    this.entries.clear();
    await Promise.all(
      all.map(async (e) => {
        e.evicted = true;
        try {
          await this.io.close(await e.fd);
        } catch {
          // already failed to open or closed: nothing to release
        }
      }),
    );
  }

  private evictOverflow(): void {
    if (this.entries.size <= this.maxOpen) return;
    for (const e of this.entries.values()) {
      if (this.entries.size <= this.maxOpen) break;
      this.entries.delete(e.path);
      e.evicted = true;
      if (e.refs === 0) this.closeEntry(e);
    }
  }

  private closeEntry(e: Entry): void {
    e.fd.then((fd) => this.io.close(fd)).catch(() => undefined);
  }
}
