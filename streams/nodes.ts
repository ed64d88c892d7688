/**
 * Processor nodes: the plain functions of the builder, wired parent → child.
 * A node keeps no state of its own; whatever a partition needs (stores,
 * stream time, output sequences) lives in the TaskContext it is handed, so
 * one graph serves every task of every instance.
 */
import type { Header, ValueEncoding } from '../protocol/index.ts';
import { ForwardingRec } from './forwarding-rec.ts';
import { ViewedRec } from './json-view.ts';
import type { KeyValueStore } from './state-store.ts';

/**
 * A record as the steps see it. `topic`, `partition` and `offset` are those
 * of the input record it came from.
 *
 * Input records are the client's lazy records (`subscribe({ lazyValues })`):
 * `value` is decoded, for the whole stored batch at once, when a step first
 * reads it, and a record whose value no step replaced is written out from
 * its stored bytes (`valueBytes`), never decoded and encoded again. So a
 * value is read-only: a step that changes it returns a new one (map,
 * mapValues), and `{...r}` does not copy `value` (it is a getter; steps
 * that take such a copy back keep the record's value).
 */
export interface Rec<K = unknown, V = unknown> {
  key: K;
  readonly value: V;
  /** Event time, ms since the epoch. */
  timestamp: number;
  headers: Header[];
  topic?: string;
  partition?: number;
  offset?: number;
  /** The value's stored bytes while the record carries its input's value unchanged (null: a tombstone); undefined otherwise. */
  readonly valueBytes?: Uint8Array | null;
  /** How valueBytes are encoded. */
  readonly valueEncoding?: ValueEncoding;
  /** Where a sink may keep the partition of a key that recurs (a window's output key), checked against key and count. */
  partitionMemo?: PartitionMemo;
}

/** A key's partition among `partitions`, computed once: murmur2 per output was ~4% of a windowed count's CPU. */
export interface PartitionMemo {
  memoKey: string | undefined;
  memoPartitions: number;
  memoPartition: number;
}

/** What a step may return in place of a whole record: the fields it changes. */
export type RecUpdate<K, V> = { key?: K; value: V; timestamp?: number; headers?: Header[] };

export interface StreamMetrics {
  /** Input records handed to the graph. */
  processed: number;
  /** Records written to output and repartition topics. */
  produced: number;
  /** Records whose window had ended in stream time but was within grace: counted in. */
  lateAccepted: number;
  /** Records for windows already closed (past grace): dropped. */
  lateDropped: number;
  /** Records skipped on reprocessing because the restored state already has them. */
  skipped: number;
  /** Changelog records read back on restores. */
  restoredRecords: number;
  /** State entries loaded from the local store (IndexedDB) on restores, whose changelog records were not read. */
  restoredLocalEntries: number;
  flushes: number;
  commits: number;
  /** Times processing stopped because maxPendingRecords outputs were unacknowledged (it waits for acks, not for input). */
  outputWaits: number;
  /** Milliseconds processing spent so stopped. */
  outputWaitMs: number;
}

/** Every counter at zero (an app's, a task's, a bench's or a test's start). */
export function zeroMetrics(): StreamMetrics {
  return { processed: 0, produced: 0, lateAccepted: 0, lateDropped: 0, skipped: 0, restoredRecords: 0, restoredLocalEntries: 0, flushes: 0, commits: 0, outputWaits: 0, outputWaitMs: 0 };
}

export interface TaskContext {
  readonly partition: number;
  readonly metrics: StreamMetrics;
  store<V>(name: string): KeyValueStore<V>;
  /** Stream time of a windowed store: the highest event time it has seen on this partition. */
  streamTime(store: string): number;
  setStreamTime(store: string, t: number): void;
  /** Queues a record for a topic under `key` (the record's key as text); the sink picks the partition, the task numbers it. */
  emit(topic: string, partition: number, key: string | null, rec: Rec): void;
  /** Partition count of an output topic (known since start). */
  partitions(topic: string): number;
  /** Latest-value table read by `app.table()`. */
  lookup(table: string, key: string): unknown;
}

export abstract class ProcessorNode {
  readonly children: ProcessorNode[] = [];
  abstract process(t: TaskContext, r: Rec): void;
  protected forward(t: TaskContext, r: Rec): void {
    const c = this.children;
    for (let i = 0; i < c.length; i++) c[i].process(t, r);
  }
}

/** A plain pass-through, the head of a sub-graph (a source topic or a repartition topic). */
export class SourceNode extends ProcessorNode {
  constructor(
    readonly topic: string,
    /** Values read as JSON views (`from(topic, { values: 'view' })`). */
    readonly view = false,
  ) {
    super();
  }
  process(t: TaskContext, r: Rec): void {
    this.forward(t, this.view ? new ViewedRec(r) : r);
  }
}

function applyUpdate(r: Rec, u: RecUpdate<unknown, unknown> | Rec): Rec {
  // The record itself back: it goes on as it is (its value still lazy).
  if (u === r) return r;
  return {
    key: u.key === undefined ? r.key : u.key,
    // An update spread from the record (`{...r, key}`) has no value of its own: the record's is meant.
    value: 'value' in u ? u.value : r.value,
    timestamp: u.timestamp ?? r.timestamp,
    headers: u.headers ?? r.headers,
    topic: r.topic,
    partition: r.partition,
    offset: r.offset,
  };
}

export class MapNode extends ProcessorNode {
  constructor(private readonly fn: (r: Rec) => RecUpdate<unknown, unknown>) {
    super();
  }
  process(t: TaskContext, r: Rec): void {
    this.forward(t, applyUpdate(r, this.fn(r)));
  }
}

/** A new value, the rest of the record kept (mapValues): one record built, no update object between. */
export class MapValuesNode extends ProcessorNode {
  constructor(private readonly fn: (r: Rec) => unknown) {
    super();
  }
  process(t: TaskContext, r: Rec): void {
    this.forward(t, { key: r.key, value: this.fn(r), timestamp: r.timestamp, headers: r.headers, topic: r.topic, partition: r.partition, offset: r.offset });
  }
}

export class RekeyNode extends ProcessorNode {
  constructor(private readonly fn: (r: Rec) => unknown) {
    super();
  }
  /**
   * A new key over the same value (selectKey, groupBy): the value stays as the input has it (lazy, its stored
   * bytes written out by a sink as they are), one small object per record.
   */
  process(t: TaskContext, r: Rec): void {
    this.forward(t, new ForwardingRec(r, this.fn(r)));
  }
}

export class FilterNode extends ProcessorNode {
  constructor(private readonly pred: (r: Rec) => boolean) {
    super();
  }
  process(t: TaskContext, r: Rec): void {
    if (this.pred(r)) this.forward(t, r);
  }
}

export class FlatMapNode extends ProcessorNode {
  constructor(private readonly fn: (r: Rec) => Iterable<RecUpdate<unknown, unknown>>) {
    super();
  }
  process(t: TaskContext, r: Rec): void {
    for (const u of this.fn(r)) this.forward(t, applyUpdate(r, u));
  }
}

export class PeekNode extends ProcessorNode {
  constructor(private readonly fn: (r: Rec) => void) {
    super();
  }
  process(t: TaskContext, r: Rec): void {
    this.fn(r);
    this.forward(t, r);
  }
}

/** Routes each record to the first branch whose predicate holds (Kafka's `branch`); records matching none are dropped. */
export class BranchNode extends ProcessorNode {
  readonly branches: ProcessorNode[];
  constructor(private readonly preds: Array<(r: Rec) => boolean>) {
    super();
    this.branches = preds.map(() => new PassNode());
  }
  process(t: TaskContext, r: Rec): void {
    for (let i = 0; i < this.preds.length; i++) {
      if (this.preds[i](r)) {
        this.branches[i].process(t, r);
        return;
      }
    }
  }
}

export class PassNode extends ProcessorNode {
  process(t: TaskContext, r: Rec): void {
    this.forward(t, r);
  }
}

/** Stream–table join: looks the record's key up in a latest-value table. Inner join unless `left`. */
export class TableJoinNode extends ProcessorNode {
  constructor(
    private readonly table: string,
    private readonly joiner: (r: Rec, tableValue: unknown) => unknown,
    private readonly left: boolean,
  ) {
    super();
  }
  process(t: TaskContext, r: Rec): void {
    const tv = r.key === null || r.key === undefined ? undefined : t.lookup(this.table, keyString(r.key));
    if (tv === undefined && !this.left) return;
    this.forward(t, { key: r.key, value: this.joiner(r, tv ?? null), timestamp: r.timestamp, headers: r.headers, topic: r.topic, partition: r.partition, offset: r.offset });
  }
}

/** Keys of state and of records written by the library: strings (numbers are turned into their decimal text). */
export function keyString(k: unknown): string {
  if (typeof k === 'string') return k;
  if (typeof k === 'number' || typeof k === 'bigint' || typeof k === 'boolean') return String(k);
  if (k instanceof Uint8Array) return new TextDecoder().decode(k);
  return JSON.stringify(k);
}

/**
 * Writes records to a topic: the key's partition (murmur2, as every producer
 * picks it) or, for a null key, the input partition modulo the topic's count,
 * so the choice is the same on every reprocessing.
 */
export class SinkNode extends ProcessorNode {
  constructor(
    readonly topic: string,
    private readonly partitionOf: (key: string, partitions: number) => number,
  ) {
    super();
  }
  process(t: TaskContext, r: Rec): void {
    const n = t.partitions(this.topic);
    let key: string | null;
    if (r.key === null || r.key === undefined) key = null;
    else key = keyString(r.key);
    let p: number;
    if (key === null) p = t.partition % n;
    else {
      // A step between may have changed the key ({...r, key}) or the sink's topic may differ: the memo counts only for the same key and count.
      const m = r.partitionMemo;
      if (m !== undefined && m.memoKey === key && m.memoPartitions === n) p = m.memoPartition;
      else {
        p = this.partitionOf(key, n);
        if (m !== undefined) {
          m.memoKey = key;
          m.memoPartitions = n;
          m.memoPartition = p;
        }
      }
    }
    t.emit(this.topic, p, key, r);
  }
}
