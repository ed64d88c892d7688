/**
 * What the helpers of a partition log — reads, retention, compaction,
 * recovery, producer lookups — may see of it. Only PartitionLog changes its
 * state (through its methods); the helpers read this view, so they never
 * import partition-log.ts and it imports them without a loop.
 */
import type { Crc32c } from '../../protocol/crc32c.ts';
import type { FileHandleCache } from './file-handles.ts';
import type { IndexCache } from './index-cache.ts';
import type { StorageIo } from './io.ts';
import type { TopicConfig } from './log-store.ts';
import type { Segment } from './segment.ts';
import type { TailCache } from './tail-cache.ts';
import type { WriteBuffers } from './write-buffers.ts';

/** Shared by every partition of a store. */
export interface PartitionEnv {
  io: StorageIo;
  crc: Crc32c;
  handles: FileHandleCache;
  indexCache: IndexCache;
  now: () => number;
  indexIntervalBytes: number;
  snapshotIntervalBytes: number;
  /** Most keys one compaction pass holds in memory (its offset map). */
  maxCompactionKeys: number;
  log: { info(obj: object, msg?: string): void; warn(obj: object, msg?: string): void; error(obj: object, msg?: string): void };
  notifyDurable: (topic: string, partition: number, highWatermark: number) => void;
  /** Reused memory for borrowed batches while their write is in flight (PartitionLog.appendBorrowed). */
  writeBuffers: WriteBuffers;
}

export interface PartitionView {
  readonly topic: string;
  readonly partition: number;
  readonly dir: string;
  readonly env: PartitionEnv;
  config(): TopicConfig;
  readonly tail: Pick<TailCache, 'read'>;
  /** Sorted by base offset; the last one is active. */
  readonly segments: readonly Segment[];
  readonly active: Segment;
  readonly earliest: number;
  readonly logEnd: number;
  readonly highWatermark: number;
  /** Byte position of the high watermark in the active segment. */
  readonly hwPos: number;
  /** Byte position of everything acknowledged in the active segment (>= hwPos for `interval`). */
  readonly ackedPos: number;
}
