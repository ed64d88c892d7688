/**
 * A task: one input partition of one root, owned by one instance at a time.
 *
 * Processing is synchronous per record: the graph runs, outputs are queued
 * with their sequences, stores change in memory. A flush then makes the
 * work durable in a fixed order, which is the exactly-once argument:
 *
 *   1. outputs (and repartition records), each (topic, partition) under the
 *      task's producer id with dense sequences — acked;
 *   2. the changed store entries, then the progress record (input offset,
 *      next sequences, stream times) to the task's changelog partition — acked;
 *   3. the input offset committed to the consumer group.
 *
 * A crash anywhere before 2 completes leaves the last progress record as the
 * truth: the next owner restores state and sequences as of that offset and
 * reprocesses from it; the outputs it regenerates carry the same sequences
 * as the first attempt's, and the hub answers those it already has as
 * duplicates. A crash between 2 and 3 only leaves the group's offset behind
 * the progress record: records below the progress offset are skipped.
 */
import { crc32c, TributaryError, type Crc32c, type Header } from '../protocol/index.ts';
import { StreamsError } from './errors.ts';
import type { ConsumedRecord, ReadyClient, SendEvent } from './client-contract.ts';
import { ChangelogRestorer, fenceEvent, progressEvent, pushEntry } from './changelog.ts';
import type { RootDef } from './builder.ts';
import { WindowResultValue } from './aggregate-nodes.ts';
import type { Rec, StreamMetrics, TaskContext } from './nodes.ts';
import { changelogProducerId, SequenceBook, taskProducerId, type SequenceEntry } from './sequences.ts';
import type { LocalState } from './idb-state.ts';
import { OutputLane, type LaneSettings, type Slots } from './output-lanes.ts';
import { KeyValueStore } from './state-store.ts';
import { WindowStore } from './window-store.ts';

const NO_HEADERS: readonly Header[] = [];
/** What follows the number in a windowed result's JSON text. */
const CLOSE_BRACE = new TextEncoder().encode('}');

export interface TaskSettings {
  applicationId: string;
  /** This instance's id: part of the producer id of its changelog writes (each ownership adds a nonce, see Task). */
  instanceId: string;
  changelogTopic: string;
  /** Flush once this many outputs and changed keys are waiting (the handler then waits for the flush). */
  maxPendingRecords: number;
  /** Records per produce request at most. */
  maxBatchRecords: number;
  /** A lane sends before a flush only once this many outputs are buffered. */
  minBatchRecords: number;
  /** Produce requests in flight per output partition. */
  requestsPerLane: number;
  restoreTimeoutMs: number;
  produceTimeoutMs: number;
}

export interface TaskEnv {
  client: ReadyClient;
  metrics: StreamMetrics;
  partitionCount(topic: string): number;
  lookup(table: string, key: string): unknown;
  /** Where state is kept between runs besides the changelog (IndexedDB), if anywhere. */
  local?: LocalState;
  /** The app's cap on produce requests in flight (one connection). */
  slots: Slots;
  /** Commits the next input offset of this partition to the group. */
  commit(partition: number, offset: number): Promise<void>;
  /** The batch checksum (the runtime's native one, resolved at start); default the portable CRC-32C. */
  crc?: Crc32c;
}

/** 48 random bits naming one ownership of a task (ids stay well under LIMITS.maxProducerIdBytes). */
function tenureNonce(): string {
  const b = new Uint8Array(6);
  globalThis.crypto.getRandomValues(b);
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}

export class Task implements TaskContext {
  private readonly stores = new Map<string, KeyValueStore<unknown>>();
  private times: Record<string, number> = {};
  private seqs = new SequenceBook();
  /** Next input offset to process; -1 until known (then the group's position is taken as it comes). */
  private position = -1;
  private committed = -1;
  /** Event time of the last record processed (for the lag metric); -1 before the first. */
  lastTimestamp = -1;
  /** Output lanes by topic, then partition, created at the first output after a restore. */
  private readonly lanes = new Map<string, OutputLane[]>();
  /** Lanes pushed to since the last pump. */
  private toPump: OutputLane[] = [];
  private changelog: OutputLane | undefined;
  /** Outputs queued or in flight, not yet acknowledged: processing waits while they reach maxPendingRecords. */
  private unacked = 0;
  private room: (() => void) | undefined;
  private readonly producerId: string;
  private readonly changelogPid: string;
  private flushChain: Promise<void> = Promise.resolve();
  private failed: Error | undefined;
  readonly metrics: StreamMetrics;

  constructor(
    readonly root: RootDef,
    readonly partition: number,
    private readonly s: TaskSettings,
    private readonly env: TaskEnv,
  ) {
    this.metrics = env.metrics;
    this.producerId = taskProducerId(s.applicationId, root.topic, partition);
    // One changelog producer per ownership, not per instance: an instance that gets a partition back
    // (revoked, then reassigned) must not reuse the id, or the hub answers its fence (sequence 0) and
    // its writes as duplicates of its previous tenure's, and the restore stops at that old fence.
    this.changelogPid = changelogProducerId(this.producerId, s.instanceId, tenureNonce());
    for (const def of root.stores) this.stores.set(def.name, def.kind === 'kv' ? new KeyValueStore(def.name) : new WindowStore(def.name, def.kind === 'session'));
  }

  private laneSettings(): LaneSettings {
    return {
      client: this.env.client,
      window: this.s.requestsPerLane,
      maxRecords: this.s.maxBatchRecords,
      minRecords: this.s.minBatchRecords,
      timeoutMs: this.s.produceTimeoutMs,
      slots: this.env.slots,
      crc: this.env.crc ?? crc32c,
      onAcked: (n) => {
        this.unacked -= n;
        if (this.room && this.unacked < this.s.maxPendingRecords) {
          const go = this.room;
          this.room = undefined;
          go();
        }
      },
      onFailed: (err) => {
        this.failed ??= new StreamsError('TASK_FAILED', `output of ${this.root.topic}/${this.partition} failed: ${err.message}`, { cause: err });
        const go = this.room;
        this.room = undefined;
        go?.();
      },
    };
  }

  // ---------- TaskContext ----------

  store<V>(name: string): KeyValueStore<V> {
    const s = this.stores.get(name);
    if (!s) throw new TributaryError('BAD_REQUEST', `no store ${name} under ${this.root.topic}`);
    return s as KeyValueStore<V>;
  }

  streamTime(store: string): number {
    return this.times[store] ?? -Infinity;
  }

  setStreamTime(store: string, t: number): void {
    this.times[store] = t;
  }

  emit(topic: string, partition: number, key: string | null, r: Rec): void {
    let byPartition = this.lanes.get(topic);
    if (!byPartition) this.lanes.set(topic, (byPartition = []));
    let lane = byPartition[partition];
    // A lane numbers its outputs on from the restored sequence; its end() is the next one from then on.
    if (!lane) byPartition[partition] = lane = new OutputLane(topic, partition, this.producerId, this.seqs.peek(topic, partition), this.laneSettings());
    // A value the steps left as the input stored it goes out as those bytes; a count's windowed result as its prepared text.
    const stored = r.valueBytes;
    if (stored !== undefined) lane.pushEncoded(key, stored, r.valueEncoding ?? 'bytes', r.timestamp, r.headers);
    else {
      const v = r.value;
      // The number written after the window's prepared head: no text built per update.
      const head = v instanceof WindowResultValue ? v.jsonHeadBytes() : undefined;
      if (head !== undefined) lane.pushJsonNumber(key, head, (v as WindowResultValue).value as number, CLOSE_BRACE, r.timestamp, r.headers);
      else lane.push(key, v, r.timestamp, r.headers);
    }
    // A flag on the lane, not a Set: no hash per output.
    if (!lane.toPump) {
      lane.toPump = true;
      this.toPump.push(lane);
    }
    this.unacked++;
    this.metrics.produced++;
  }

  /** Next output sequence per (topic, partition): the lanes' ends over the restored ones. */
  private sequenceEntries(): SequenceEntry[] {
    const book = SequenceBook.from(this.seqs.entries());
    for (const l of this.allLanes()) book.set(l.topic, l.partition, l.end());
    return book.entries();
  }

  private allLanes(): OutputLane[] {
    const out: OutputLane[] = [];
    for (const byPartition of this.lanes.values()) for (const l of byPartition) if (l) out.push(l);
    return out;
  }

  partitions(topic: string): number {
    return this.env.partitionCount(topic);
  }

  lookup(table: string, key: string): unknown {
    return this.env.lookup(table, key);
  }

  // ---------- restore ----------

  /**
   * Writes a fence to the changelog partition, reads the partition back up
   * to it, and takes the committed state, sequences and input offset.
   */
  async restore(): Promise<void> {
    const { client } = this.env;
    const topic = this.s.changelogTopic;
    const fence = await client.produce(topic, [fenceEvent(this.s.instanceId, Date.now())], {
      partition: this.partition,
      producerId: this.changelogPid,
      sequence: 0,
      timeoutMs: this.s.produceTimeoutMs,
    });
    this.changelog = new OutputLane(topic, this.partition, this.changelogPid, 1, this.laneSettings());
    const stopAt = fence.offsets[0];
    const restorer = new ChangelogRestorer();
    let from = 0;
    const local = this.env.local;
    if (local) {
      const snap = await local.load(topic, this.partition);
      if (snap && snap.next <= stopAt) {
        restorer.seed(snap.stores, snap.progress);
        from = snap.next;
        this.metrics.restoredLocalEntries += snap.entries;
      } else if (snap) await local.clear(topic, this.partition);
    }
    if (stopAt > from) {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => {
          sub.close();
          reject(new StreamsError('RESTORE_TIMEOUT', `restoring ${topic}/${this.partition} did not reach offset ${stopAt} within ${this.s.restoreTimeoutMs} ms`));
        }, this.s.restoreTimeoutMs);
        let done = false;
        const sub = client.subscribe(topic, {
          partitions: [this.partition],
          from: from === 0 ? 'earliest' : from,
          onBatch: (rs: ConsumedRecord[]) => {
            for (const r of rs) {
              if (done) return;
              if (r.offset >= stopAt) {
                done = true;
                clearTimeout(timer);
                sub.close();
                resolve();
                return;
              }
              restorer.apply(r.key, r.value);
            }
          },
        });
      });
    }
    const st = restorer.finish();
    for (const [name, store] of this.stores) {
      for (const [k, v] of st.stores.get(name) ?? []) store.restore(k, v);
      // The last owner's unfinished flush wrote these keys: write their committed values again.
      for (const k of st.toRepair.get(name) ?? []) store.touch(k);
    }
    if (st.progress) {
      this.position = st.progress.offset;
      this.committed = -1; // commit again at the next flush, in case the group is behind
      this.seqs = SequenceBook.from(st.progress.seqs);
      this.times = { ...st.progress.times };
    }
    this.metrics.restoredRecords += st.records;
  }

  // ---------- processing ----------

  /** Runs one input record through the graph (its outputs stay queued until the next batch, flush or pump). */
  process(r: ConsumedRecord): void {
    if (this.failed) throw this.failed;
    this.processOne(r);
  }

  /**
   * Runs the records of one input frame through the graph, then sends the
   * queued outputs. While maxPendingRecords outputs are unacknowledged the
   * rest waits for acks. A promise only when it had to wait.
   */
  processBatch(rs: readonly ConsumedRecord[], from = 0): void | Promise<void> {
    if (this.failed) throw this.failed;
    for (let i = from; i < rs.length; i++) {
      this.processOne(rs[i]);
      if (this.unacked >= this.s.maxPendingRecords) {
        this.pump();
        const stopped = performance.now();
        this.metrics.outputWaits++;
        return this.waitForRoom().then(() => {
          this.metrics.outputWaitMs += performance.now() - stopped;
          return this.processBatch(rs, i + 1);
        });
      }
    }
    this.pump();
  }

  private waitForRoom(): Promise<void> {
    if (this.failed) return Promise.reject(this.failed);
    if (this.unacked < this.s.maxPendingRecords) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      this.room = () => (this.failed ? reject(this.failed) : resolve());
    });
  }

  /** Sends what the lanes pushed to since the last pump have buffered, as far as their windows allow. */
  pump(): void {
    const lanes = this.toPump;
    this.toPump = [];
    for (const lane of lanes) {
      lane.toPump = false;
      lane.pump();
    }
  }

  private processOne(r: ConsumedRecord): void {
    if (r.offset < this.position) {
      this.metrics.skipped++;
      return;
    }
    this.position = r.offset + 1;
    this.lastTimestamp = r.timestamp;
    this.metrics.processed++;
    // A consumed record has the shape of a Rec: handed over as it is (one object less per record).
    this.root.node.process(this, r as Rec);
  }

  /** Next input offset to process (after a restore: the restored one), or -1 when not known yet. */
  get restoredPosition(): number {
    return this.position;
  }

  /** Outputs queued and not yet sent, per (topic, partition), with the sequence of the first. */
  pendingOutputs(): ReadonlyArray<{ topic: string; partition: number; firstSeq: number; events: readonly SendEvent[] }> {
    return this.allLanes()
      .map((l) => l.queuedEvents())
      .filter((o) => o.events.length > 0);
  }

  /** Something to make durable: outputs, changed keys, or an offset not yet committed. */
  get hasWork(): boolean {
    if (this.unacked > 0) return true;
    if (this.position >= 0 && this.position !== this.committed) return true;
    for (const s of this.stores.values()) if (s.dirtyCount) return true;
    return false;
  }

  /** Flushes what was processed so far (one flush at a time, in order). */
  flush(): Promise<void> {
    const run = this.flushChain.then(() => this.flushNow());
    this.flushChain = run.catch(() => undefined);
    return run;
  }

  private async flushNow(): Promise<void> {
    if (this.failed) throw this.failed;
    // The snapshot: everything below `position` is in the lanes up to these ends and in these entries; processing goes on meanwhile.
    const ends = this.allLanes().map((l) => [l, l.end()] as const);
    const position = this.position;
    const progress = { offset: position, seqs: this.sequenceEntries(), times: { ...this.times }, epoch: this.s.instanceId };
    const now = Date.now();
    const local = this.env.local;
    const changed: Array<[string, string, unknown]> | undefined = local ? [] : undefined;
    // Only the last value of a key since the previous flush goes to the changelog (the dirty set), taken now.
    const entries: Array<[string, string, unknown]> = [];
    for (const [name, store] of this.stores) {
      for (const [k, v] of store.takeDirty()) {
        entries.push([name, k, v]);
        changed?.push([name, k, v]);
      }
    }
    if (entries.length === 0 && position === this.committed && ends.every(([l, end]) => l.isAckedTo(end))) return;
    try {
      await Promise.all(ends.map(([l, end]) => l.ackedTo(end)));
      if (position >= 0) {
        const cl = this.changelog;
        if (!cl) throw new StreamsError('TASK_FAILED', `${this.root.topic}/${this.partition} flushed before its restore`);
        for (const [name, k, v] of entries) pushEntry(cl, name, k, v, now);
        const p = progressEvent(progress, now);
        cl.push(p.key as string, p.value, now, NO_HEADERS);
        await cl.ackedTo(cl.end());
        // The changelog holds this flush now: the local snapshot may move to it (never ahead of the changelog).
        if (local && changed) await local.save(this.s.changelogTopic, this.partition, changed, progress, cl.lastAckedOffset + 1);
        await this.env.commit(this.partition, position);
        this.committed = position;
        this.metrics.commits++;
      }
      this.metrics.flushes++;
    } catch (err) {
      // What is written is consistent with the last progress record; the rest is gone from memory.
      this.failed ??= new StreamsError('TASK_FAILED', `flush of ${this.root.topic}/${this.partition} failed: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
      throw this.failed;
    }
  }
}
