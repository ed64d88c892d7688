/**
 * Runs a SinkTask: consumes the topic, hands the task batches, and keeps
 * the committed offsets.
 *
 * Each partition is read by its own subscription starting at the offset the
 * task keeps (PostgreSQL: in its offsets table) or else the offset store's,
 * or `from` when neither knows the partition. The handler only appends to a
 * buffer; a batch is written when it reaches batchSize or lingerMs after its
 * first record. While a batch is being written the next one fills, and the
 * handlers wait (so the subscriptions stop crediting and the hub stops
 * sending) only when that one is full too: bounded memory, pipelined writes.
 */
import type { ConsumedRecord, SubscriptionHandle } from '../web-client/index.ts';
import type { ConnectorConfig } from './config.ts';
import type { OffsetStore } from './offset-store.ts';
import type { PartitionOffsets, SinkTask } from './task.ts';
import { StoppedError, Worker, type WorkerDeps } from './worker.ts';

export interface SinkOptions {
  batchSize: number;
  lingerMs: number;
  /** Where a partition starts when neither the task nor the offset store knows it. */
  from: 'earliest' | 'latest';
  /** Offsets of sinks that keep none themselves; also written by sinks that do (for lag). */
  offsets: OffsetStore | null;
  /** How often the high watermarks are read for lag. */
  lagIntervalMs: number;
}

export class SinkRunner extends Worker {
  private buffer: ConsumedRecord[] = [];
  private writing: Promise<void> | null = null;
  private lingerTimer: ReturnType<typeof setTimeout> | null = null;
  private readonly committed = new Map<number, number>();
  private readonly highWatermarks = new Map<number, number>();
  private subs: SubscriptionHandle[] = [];
  private lagTimer: ReturnType<typeof setInterval> | null = null;

  constructor(
    config: ConnectorConfig,
    private readonly task: SinkTask,
    private readonly o: SinkOptions,
    deps: WorkerDeps,
  ) {
    super(config, 'sink', deps);
  }

  async start(): Promise<void> {
    const { topic } = this.config;
    try {
      await this.retrying('start', () => this.task.start());
      const info = await this.retrying('describe topic', () => this.deps.http.topic(topic));
      const partitions = Array.from({ length: info.partitions }, (_, p) => p);
      const own = await this.retrying('open', () => this.task.open(partitions));
      const stored = this.o.offsets ? await this.retrying('load offsets', () => this.o.offsets!.load()) : new Map<number, number>();
      for (const p of partitions) {
        const at = own ? own.get(p) : stored.get(p);
        if (at !== undefined) this.committed.set(p, at);
      }
      this.noteHighWatermarks(info.offsets);
      this.lagTimer = setInterval(() => void this.refreshLag(), this.o.lagIntervalMs);
      this.lagTimer.unref?.();
      for (const p of partitions) {
        const at = this.committed.get(p);
        const from = at !== undefined ? at : this.o.from;
        this.subs.push(this.deps.client.subscribe(topic, { partitions: [p], from, creditBytes: 4 * 1024 * 1024 }, (r) => this.onRecord(r)));
      }
      if (this.status.state === 'starting') this.status.state = 'running';
      this.updateStatus();
    } catch (e) {
      if (!(e instanceof StoppedError)) throw e;
    }
  }

  /** Called per record: synchronous unless it must wait (paused, or both batches full), so the common case allocates no promise. */
  private onRecord(r: ConsumedRecord): void | Promise<void> {
    // Paused: the handler waits, the subscription stops crediting, the hub stops sending.
    if (this.paused) return this.whileUnpaused().then(() => this.onRecord(r));
    // The log holds at least this record: keeps lag honest between high-watermark reads.
    if ((this.highWatermarks.get(r.partition) ?? 0) <= r.offset) this.highWatermarks.set(r.partition, r.offset + 1);
    this.buffer.push(r);
    if (this.buffer.length >= this.o.batchSize) {
      if (!this.writing) this.startWrite();
      else return this.waitForRoom();
    } else if (!this.lingerTimer) {
      this.lingerTimer = setTimeout(() => {
        this.lingerTimer = null;
        if (!this.writing) this.startWrite();
        else void this.writing.then(() => this.buffer.length && !this.writing && this.startWrite());
      }, this.o.lingerMs);
    }
  }

  /** One batch is in the task's hands and the next is full: wait for the first, then hand the next over. */
  private async waitForRoom(): Promise<void> {
    while (this.writing && this.buffer.length >= this.o.batchSize) await this.writing;
    if (this.buffer.length >= this.o.batchSize) this.startWrite();
  }

  private startWrite(): void {
    if (this.lingerTimer) {
      clearTimeout(this.lingerTimer);
      this.lingerTimer = null;
    }
    if (this.buffer.length === 0 || this.writing) return;
    const batch = this.buffer;
    this.buffer = [];
    this.writing = this.write(batch).finally(() => {
      this.writing = null;
      // Records that arrived during the write and are not a full batch yet wait at most lingerMs more.
      if (this.buffer.length && !this.lingerTimer && !this.stopping) {
        if (this.buffer.length >= this.o.batchSize) this.startWrite();
        else this.lingerTimer = setTimeout(() => ((this.lingerTimer = null), this.startWrite()), this.o.lingerMs);
      }
    });
  }

  private async write(batch: ConsumedRecord[]): Promise<void> {
    let safe: PartitionOffsets;
    try {
      safe = await this.retrying('write', () => this.task.put(batch));
    } catch (e) {
      if (e instanceof StoppedError) return;
      throw e;
    }
    this.status.records += batch.length;
    for (const [p, o] of safe) this.committed.set(p, Math.max(o, this.committed.get(p) ?? 0));
    if (this.o.offsets) {
      try {
        await this.retrying('commit offsets', () => this.o.offsets!.commit(safe));
      } catch (e) {
        if (!(e instanceof StoppedError)) throw e;
      }
    }
    this.updateStatus();
  }

  private noteHighWatermarks(offsets: Array<{ partition: number; highWatermark: number }>): void {
    for (const o of offsets) this.highWatermarks.set(o.partition, Math.max(o.highWatermark, this.highWatermarks.get(o.partition) ?? 0));
  }

  private async refreshLag(): Promise<void> {
    try {
      this.noteHighWatermarks((await this.deps.http.topic(this.config.topic)).offsets);
      this.updateStatus();
    } catch {
      // Lag is advisory; the next tick tries again.
    }
  }

  private updateStatus(): void {
    let lag = 0;
    let known = true;
    const parts: typeof this.status.partitions = [];
    for (const [p, hw] of [...this.highWatermarks].sort((a, b) => a[0] - b[0])) {
      const c = this.committed.get(p);
      parts.push({ partition: p, committed: c ?? null, highWatermark: hw });
      if (c === undefined) known = hw === 0 && known;
      else lag += Math.max(0, hw - c);
    }
    this.status.partitions = parts;
    this.status.lag = known ? lag : null;
  }

  async stop(): Promise<void> {
    this.abort.abort();
    for (const s of this.subs) s.close();
    this.subs = [];
    if (this.lagTimer) clearInterval(this.lagTimer);
    if (this.lingerTimer) clearTimeout(this.lingerTimer);
    await this.writing?.catch(() => undefined);
    await this.task.stop().catch(() => undefined);
    this.status.state = 'stopped';
  }
}
