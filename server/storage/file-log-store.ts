/**
 * The embedded file engine behind `LogStore`: one directory per topic, one
 * per partition, segment files inside (see data-dir.ts for the layout and
 * partition-log.ts for what an acknowledgement promises per fsync policy).
 */
import fsp from 'node:fs/promises';
import path from 'node:path';
import type { Crc32c } from '../../protocol/crc32c.ts';
import { TributaryError } from '../../protocol/errors.ts';
import { assertTopicName } from '../../protocol/limits.ts';
import { defaultOf } from '../settings.ts';
import { acquireLock, checkFormat, readTopicMeta, TRASH_DIR, writeTopicMeta, type TopicMeta } from './data-dir.ts';
import { FileHandleCache } from './file-handles.ts';
import { IndexCache } from './index-cache.ts';
import { nodeIo, type StorageIo } from './io.ts';
import {
  DEFAULT_TOPIC_CONFIG,
  type AppendResult,
  type FileLogStoreOptions,
  type LogStore,
  type PartitionOffsets,
  type ReadResult,
  type StorageProblem,
  type TopicConfig,
  type TopicInfo,
} from './log-store.ts';
import { nativeCrc32c } from './native-crc.ts';
import { PartitionLog, type PartitionEnv } from './partition-log.ts';
import { readCachedTail } from './partition-reads.ts';
import { ProducerStateTable } from './producer-state.ts';
import { recoverPartition } from './recovery.ts';
import { scrubPartition } from './scrub.ts';
import { TailCache } from './tail-cache.ts';
import { checkConfigOverrides, checkPartitions } from './topic-config.ts';
import { WriteBuffers } from './write-buffers.ts';

/** Engine seams beyond the LogStore contract (tests and benchmarks use them). */
export interface FileLogStoreTuning {
  /** File operations; tests inject EIO/ENOSPC here. */
  io?: StorageIo;
  /** Clock for append times and retention (ms since the epoch). */
  now?: () => number;
}

interface Topic {
  meta: TopicMeta;
  config: TopicConfig;
  dir: string;
  partitions: PartitionLog[];
}

const NOOP_LOG = { info() {}, warn() {}, error() {} };
const OPEN_CONCURRENCY = 8;
/** Free write buffers kept for reuse, over every partition (what the writes in flight held at most). */
const WRITE_BUFFERS_FREE_BYTES = 32 << 20;

export class FileLogStore implements LogStore {
  private readonly dataDir: string;
  private readonly defaults: TopicConfig;
  private readonly env: PartitionEnv;
  private readonly handles: FileHandleCache;
  private readonly topics = new Map<string, Topic>();
  private readonly creating = new Set<string>();
  private readonly listeners = new Set<(topic: string, partition: number, hw: number) => void>();
  private readonly tailCacheBytes: number;
  private readonly maxProducers: number;
  private readonly cleanupIntervalMs: number;
  private releaseLock: (() => Promise<void>) | null = null;
  private cleanupTimer: NodeJS.Timeout | null = null;
  private cleanupRun: Promise<void> | null = null;
  private state: 'new' | 'open' | 'closed' = 'new';
  private readonly problems: StorageProblem[] = [];
  private scrubRun: Promise<void> | null = null;

  constructor(opts: FileLogStoreOptions & FileLogStoreTuning) {
    this.dataDir = path.resolve(opts.dataDir);
    this.defaults = { ...DEFAULT_TOPIC_CONFIG, ...checkConfigOverrides(opts.defaults) };
    const io = opts.io ?? nodeIo;
    const crc: Crc32c = opts.crc ?? nativeCrc32c;
    this.handles = new FileHandleCache(io, opts.maxOpenFiles ?? defaultOf('storage.maxOpenFiles'));
    this.tailCacheBytes = opts.tailCacheBytes ?? defaultOf('storage.tailCacheBytes');
    this.maxProducers = opts.maxProducersPerPartition ?? defaultOf('storage.maxProducersPerPartition');
    this.cleanupIntervalMs = opts.cleanupIntervalMs ?? defaultOf('storage.cleanupIntervalMs');
    this.env = {
      io,
      crc,
      handles: this.handles,
      indexCache: new IndexCache(opts.maxIndexCacheBytes ?? defaultOf('storage.maxIndexCacheBytes')),
      now: opts.now ?? Date.now,
      indexIntervalBytes: opts.indexIntervalBytes ?? defaultOf('storage.indexIntervalBytes'),
      maxCompactionKeys: opts.maxCompactionKeys ?? defaultOf('storage.maxCompactionKeys'),
      snapshotIntervalBytes: opts.snapshotIntervalBytes ?? defaultOf('storage.snapshotIntervalBytes'),
      log: opts.log ?? NOOP_LOG,
      writeBuffers: new WriteBuffers(WRITE_BUFFERS_FREE_BYTES),
      notifyDurable: (t, p, hw) => {
        for (const l of this.listeners) {
          try {
            l(t, p, hw);
          } catch (err) {
            this.env.log.error({ err: String(err) }, 'onDurable listener threw');
          }
        }
      },
    };
  }

  async open(): Promise<void> {
    if (this.state !== 'new') throw new TributaryError('INTERNAL', 'a FileLogStore opens once');
    await checkFormat(this.dataDir);
    this.releaseLock = await acquireLock(this.dataDir);
    try {
      await fsp.rm(path.join(this.dataDir, TRASH_DIR), { recursive: true, force: true });
      const names = (await fsp.readdir(this.dataDir, { withFileTypes: true })).filter((e) => e.isDirectory() && !e.name.startsWith('@')).map((e) => e.name);
      for (const name of names) {
        const dir = path.join(this.dataDir, name);
        const meta = await readTopicMeta(dir);
        if (!meta) {
          this.env.log.warn({ dir }, 'directory without topic metadata ignored');
          continue;
        }
        const topic: Topic = { meta, config: { ...this.defaults, ...meta.config }, dir, partitions: [] };
        topic.partitions = await this.openPartitions(topic, 0, meta.partitions);
        this.topics.set(name, topic);
      }
    } catch (err) {
      await this.closePartitions();
      await this.releaseLock();
      this.releaseLock = null;
      throw err;
    }
    this.state = 'open';
    this.scrubRun = this.scrub();
    if (this.cleanupIntervalMs > 0) {
      this.cleanupTimer = setInterval(() => void this.runCleanup(), this.cleanupIntervalMs);
      this.cleanupTimer.unref();
    }
  }

  private async openPartitions(topic: Topic, from: number, to: number): Promise<PartitionLog[]> {
    const out: PartitionLog[] = new Array(to - from);
    let next = from;
    const worker = async (): Promise<void> => {
      while (next < to) {
        const p = next++;
        const dir = path.join(topic.dir, String(p));
        const producers = new ProducerStateTable(this.maxProducers);
        const segments = await recoverPartition(this.env, dir, producers);
        out[p - from] = new PartitionLog(topic.meta.name, p, dir, this.env, () => topic.config, producers, new TailCache(this.tailCacheBytes), segments);
      }
    };
    await Promise.all(Array.from({ length: Math.min(OPEN_CONCURRENCY, to - from) }, worker));
    return out;
  }

  storageProblems(): StorageProblem[] {
    return [...this.problems];
  }

  /** Resolves when the start-up scrub has finished (tests; close waits for it too). */
  scrubbed(): Promise<void> {
    return this.scrubRun ?? Promise.resolve();
  }

  /**
   * Background pass over every closed segment after start-up (scrub.ts): each
   * problem is logged as an error naming the offsets it costs, and kept for
   * /healthz and /metrics. Partitions one at a time, so serving comes first.
   */
  private async scrub(): Promise<void> {
    const started = Date.now();
    try {
      for (const t of [...this.topics.values()]) {
        for (let p = 0; p < t.partitions.length; p++) {
          if (this.state !== 'open') return;
          const found = await scrubPartition(this.env.io, this.env.crc, { topic: t.meta.name, partition: p, dir: path.join(t.dir, String(p)), compacted: t.config.cleanupPolicy === 'compact' });
          for (const problem of found) {
            this.problems.push(problem);
            this.env.log.error(
              { topic: problem.topic, partition: problem.partition, kind: problem.kind, fromOffset: problem.fromOffset, toOffset: problem.toOffset, file: problem.file },
              `storage damage: ${problem.message}`,
            );
          }
        }
      }
      if (this.problems.length) this.env.log.error({ problems: this.problems.length, ms: Date.now() - started }, 'storage scrub found damage: see the errors above; the rest of the log is served');
      else this.env.log.info({ ms: Date.now() - started }, 'storage scrub: every closed segment verified');
    } catch (err) {
      this.env.log.error({ err: String(err) }, 'storage scrub failed');
    }
  }

  private assertOpen(): void {
    if (this.state !== 'open') throw new TributaryError(this.state === 'closed' ? 'SHUTTING_DOWN' : 'NOT_READY', 'the log store is not open');
  }

  private info(t: Topic): TopicInfo {
    return { name: t.meta.name, partitions: t.partitions.length, config: { ...t.config }, createdAt: t.meta.createdAt };
  }

  listTopics(): TopicInfo[] {
    return [...this.topics.values()].map((t) => this.info(t));
  }

  getTopic(name: string): TopicInfo | undefined {
    const t = this.topics.get(name);
    return t && this.info(t);
  }

  async createTopic(name: string, partitions: number, config?: Partial<TopicConfig>): Promise<TopicInfo> {
    this.assertOpen();
    assertTopicName(name);
    const n = checkPartitions(partitions);
    const overrides = checkConfigOverrides(config);
    if (this.topics.has(name) || this.creating.has(name)) throw new TributaryError('TOPIC_EXISTS', `topic ${name} already exists`);
    this.creating.add(name);
    try {
      const dir = path.join(this.dataDir, name);
      await fsp.mkdir(dir, { recursive: true });
      const meta: TopicMeta = { name, partitions: n, config: overrides, createdAt: Date.now() };
      const topic: Topic = { meta, config: { ...this.defaults, ...overrides }, dir, partitions: [] };
      topic.partitions = await this.openPartitions(topic, 0, n);
      await writeTopicMeta(dir, meta);
      this.topics.set(name, topic);
      return this.info(topic);
    } finally {
      this.creating.delete(name);
    }
  }

  async updateTopic(name: string, change: { partitions?: number; config?: Partial<TopicConfig> }): Promise<TopicInfo> {
    this.assertOpen();
    const t = this.topic(name);
    const overrides = checkConfigOverrides(change.config);
    const meta: TopicMeta = { ...t.meta, config: { ...t.meta.config, ...overrides } };
    if (change.partitions !== undefined) {
      const n = checkPartitions(change.partitions);
      if (n < t.partitions.length) throw new TributaryError('BAD_CONFIG', `topic ${name} has ${t.partitions.length} partitions; partitions never shrink`);
      meta.partitions = n;
    }
    const added = meta.partitions > t.partitions.length ? await this.openPartitions(t, t.partitions.length, meta.partitions) : [];
    await writeTopicMeta(t.dir, meta);
    t.meta = meta;
    t.config = { ...this.defaults, ...meta.config };
    t.partitions.push(...added);
    return this.info(t);
  }

  async deleteTopic(name: string): Promise<void> {
    this.assertOpen();
    const t = this.topic(name);
    this.topics.delete(name);
    await Promise.all(t.partitions.map((p) => p.close()));
    const trash = path.join(this.dataDir, TRASH_DIR);
    await fsp.mkdir(trash, { recursive: true });
    const moved = path.join(trash, `${name}-${Date.now()}`);
    await fsp.rename(t.dir, moved);
    await fsp.rm(moved, { recursive: true, force: true });
  }

  private topic(name: string): Topic {
    const t = this.topics.get(name);
    if (!t) throw new TributaryError('UNKNOWN_TOPIC', `unknown topic ${String(name).slice(0, 80)}`, { topic: name });
    return t;
  }

  private partition(topic: string, partition: number): PartitionLog {
    const t = this.topic(topic);
    const p = t.partitions[partition];
    if (!p || !Number.isInteger(partition)) throw new TributaryError('BAD_PARTITION', `topic ${topic} has no partition ${partition}`, { topic, partitions: t.partitions.length });
    return p;
  }

  append(topic: string, partition: number, batch: Uint8Array): Promise<AppendResult> {
    try {
      this.assertOpen();
      return this.partition(topic, partition).append(batch);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  appendBorrowed(topic: string, partition: number, batch: Uint8Array): Promise<AppendResult> {
    try {
      this.assertOpen();
      return this.partition(topic, partition).append(batch, true);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** Pooled write buffers handed out and not yet released (tests: every write gives its buffer back). */
  get writeBuffersLent(): number {
    return this.env.writeBuffers.lent;
  }

  lastSequence(topic: string, partition: number, producerId: string): number {
    return this.partition(topic, partition).producers.get(producerId)?.lastSeq ?? -1;
  }

  async read(topic: string, partition: number, offset: number, maxBytes: number): Promise<ReadResult> {
    this.assertOpen();
    return this.partition(topic, partition).read(offset, maxBytes);
  }

  readCached(topic: string, partition: number, offset: number, maxBytes: number): ReadResult | null {
    if (this.state !== 'open') return null;
    const p = this.topics.get(topic)?.partitions[partition];
    return p ? readCachedTail(p, offset, maxBytes) : null;
  }

  async offsetForTimestamp(topic: string, partition: number, timestampMs: number): Promise<number> {
    this.assertOpen();
    return this.partition(topic, partition).offsetForTimestamp(timestampMs);
  }

  offsets(topic: string, partition: number): PartitionOffsets {
    return this.partition(topic, partition).offsets();
  }

  onDurable(listener: (topic: string, partition: number, highWatermark: number) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Runs retention and compaction once on every partition (the timer calls this too). */
  runCleanup(): Promise<void> {
    if (this.cleanupRun) return this.cleanupRun;
    this.cleanupRun = (async () => {
      try {
        for (const t of [...this.topics.values()]) {
          for (const p of t.partitions) {
            if (this.state !== 'open') continue;
            try {
              await p.cleanUp();
            } catch (err) {
              this.env.log.error({ topic: t.meta.name, partition: p.partition, err: String(err) }, 'cleanup failed');
            }
          }
        }
      } finally {
        this.cleanupRun = null;
      }
    })();
    return this.cleanupRun;
  }

  private async closePartitions(): Promise<void> {
    const all = [...this.topics.values()].flatMap((t) => t.partitions);
    const results = await Promise.allSettled(all.map((p) => p.close()));
    await this.handles.closeAll();
    const failed = results.find((r) => r.status === 'rejected');
    if (failed) throw (failed as PromiseRejectedResult).reason;
  }

  async close(): Promise<void> {
    if (this.state === 'closed') return;
    this.state = 'closed';
    if (this.cleanupTimer) clearInterval(this.cleanupTimer);
    this.cleanupTimer = null;
    if (this.cleanupRun) await this.cleanupRun.catch(() => undefined);
    if (this.scrubRun) await this.scrubRun;
    try {
      await this.closePartitions();
    } finally {
      this.topics.clear();
      const release = this.releaseLock;
      this.releaseLock = null;
      if (release) await release();
    }
  }
}
