/**
 * Caps the memory held by the indexes of closed segments: they are loaded on
 * demand and the least recently used are dropped (reloaded from their files
 * when needed again). Active segments' indexes are not counted here.
 */
import type { Segment } from './segment.ts';

export class IndexCache {
  private readonly loaded = new Map<Segment, number>();
  private bytes = 0;

  constructor(private readonly maxBytes: number) {}

  get memoryBytes(): number {
    return this.bytes;
  }

  touch(seg: Segment): void {
    const had = this.loaded.get(seg);
    if (had !== undefined) {
      this.loaded.delete(seg);
      this.bytes -= had;
    }
    const size = seg.memoryBytes();
    this.loaded.set(seg, size);
    this.bytes += size;
    for (const [s, n] of this.loaded) {
      if (this.bytes <= this.maxBytes || s === seg) break;
      this.loaded.delete(s);
      this.bytes -= n;
      if (!s.active) {
        s.index = null;
        s.timeIndex = null;
      }
    }
  }

  forget(seg: Segment): void {
    const had = this.loaded.get(seg);
    if (had === undefined) return;
    this.loaded.delete(seg);
    this.bytes -= had;
  }
}
