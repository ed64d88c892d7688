/**
 * Where a sink that keeps no offsets of its own (the webhook sink) commits
 * the next offset per partition: a small JSON file per connector, replaced
 * atomically (write, fsync, rename). At-least-once: a crash between a write
 * to the other side and the commit re-delivers that batch.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { PartitionOffsets } from './task.ts';

export interface OffsetStore {
  load(): Promise<PartitionOffsets>;
  commit(offsets: PartitionOffsets): Promise<void>;
}

export class FileOffsetStore implements OffsetStore {
  private readonly current: PartitionOffsets = new Map();
  constructor(private readonly file: string) {}

  async load(): Promise<PartitionOffsets> {
    let text: string;
    try {
      text = await fs.promises.readFile(this.file, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return new Map();
      throw e;
    }
    const doc = JSON.parse(text) as Record<string, number>;
    for (const [p, o] of Object.entries(doc)) this.current.set(Number(p), o);
    return new Map(this.current);
  }

  async commit(offsets: PartitionOffsets): Promise<void> {
    for (const [p, o] of offsets) this.current.set(p, Math.max(o, this.current.get(p) ?? 0));
    await fs.promises.mkdir(path.dirname(this.file), { recursive: true });
    const tmp = `${this.file}.tmp`;
    const fh = await fs.promises.open(tmp, 'w');
    try {
      await fh.writeFile(JSON.stringify(Object.fromEntries(this.current)));
      await fh.sync();
    } finally {
      await fh.close();
    }
    await fs.promises.rename(tmp, this.file);
  }
}
