/**
 * The connector task contract (Kafka Connect's, cut down).
 *
 * A source polls the system it reads and hands over rows with their own
 * positions; the runtime produces them with an idempotent producer and keeps
 * the position in the topic itself (record headers), so a restart resumes
 * where the log says it stopped, not where a side file says.
 *
 * A sink receives batches of records (frames as views), writes them, and answers which offsets
 * are safe to commit (the next offset per partition). A sink that stores
 * offsets in its own system (PostgreSQL, in the same transaction as the rows)
 * also answers where to resume from, and the runtime trusts that over the
 * consumer group's committed offsets (it skips records below it). The
 * runtime consumes as a member of a consumer group and commits the offsets
 * a task answers to the group after each batch.
 *
 * Every method may throw; the runtime retries with backoff (jitter, cap) and
 * never skips a record, so a task need not retry on its own. A task that
 * refuses a record for good (a webhook's 4xx) handles it itself (dead-letter).
 */
import type { ConsumedRecord, RecordsView } from '../web-client/index.ts';

export type { ConsumedRecord, RecordsView };

/** Next offset to process, per partition (Kafka's convention). */
export type PartitionOffsets = Map<number, number>;

export interface SinkTask {
  /** Connects and prepares (creates its offsets table, checks the target). */
  start(): Promise<void>;
  /**
   * Called when the consumer group assigns `partitions` to this instance (at
   * start and at every rebalance that adds some): where to resume each of
   * them, when the task keeps offsets itself
   * (undefined for a partition it knows nothing of, or for the whole map when
   * the task leaves offsets to the hub's consumer group).
   */
  open(partitions: number[]): Promise<PartitionOffsets | undefined>;
  /**
   * Writes a batch (frames of records as kept views, no object per record:
   * records-view.ts; several partitions, each in offset order) and returns
   * the offsets now safe to commit. Called by one caller at a time (a
   * prepare() may run meanwhile); a retry after a failure gets the same
   * views again.
   */
  put(batch: readonly RecordsView[]): Promise<PartitionOffsets>;
  /**
   * Optional pipelining: writes a batch without making it visible, while the
   * batches before it are still being written (a transaction of its own).
   * The runner calls commit() once every earlier batch is written, in order,
   * or abort(). commit() answers the offsets now safe to commit, or null when
   * it could not tell the batch is new to the target (then the runner writes
   * it with put()); a failed prepare or commit also falls back to put().
   */
  prepare?(batch: readonly RecordsView[]): Promise<PreparedWrite>;
  /**
   * Optional streaming (instead of put and prepare, when it answers a
   * stream): a batch written while it is read. The runner adds each frame's
   * records as they arrive (the view is valid during the call only; a
   * promise answered means wait before adding more), then calls commit()
   * once every earlier batch is written, in order, or abort(). commit()
   * answers as PreparedWrite's does; when it answers null or fails, the
   * runner calls rewrite() (retried), which writes what the target does not
   * hold yet, as put() does. null: the task does not stream with these
   * settings.
   */
  stream?(): SinkStream | null;
  stop(): Promise<void>;
}

/** A batch being written while it is read (SinkTask.stream). */
export interface SinkStream {
  /** Records added so far. */
  readonly count: number;
  /** Runs of one partition's records, in the order added. */
  readonly parts: ReadonlyArray<{ readonly partition: number }>;
  add(view: RecordsView, from: number, to: number): Promise<void> | undefined;
  commit(): Promise<PartitionOffsets | null>;
  rewrite(): Promise<PartitionOffsets>;
  abort(): Promise<void>;
}

/** A batch written but not committed (SinkTask.prepare). */
export interface PreparedWrite {
  commit(): Promise<PartitionOffsets | null>;
  abort(): Promise<void>;
}

/** A row read by a source: its key, its value and its position in the source's order. */
export interface SourceRow {
  key: string;
  value: unknown;
  /** Position in the source's order: compared with SourceTask.compare, kept as JSON in a header. */
  position: SourcePosition;
  timestamp?: number;
}

export type SourcePosition = readonly string[];

export interface SourceTask {
  start(): Promise<void>;
  /** Rows strictly after `after` (null: from the start), in position order, at most `limit`. */
  poll(after: SourcePosition | null, limit: number): Promise<SourceRow[]>;
  /** Orders positions: negative, zero or positive like Array.prototype.sort's comparator. */
  compare(a: SourcePosition, b: SourcePosition): number;
  stop(): Promise<void>;
}

/** What the runtime reports per connector (GET /v1/connectors, /metrics). */
export interface ConnectorStatus {
  name: string;
  type: string;
  kind: 'source' | 'sink';
  topic: string;
  /** running; backoff: the other side failed and the runtime waits to retry; paused: by request; failed: cannot start (bad config); stopped. */
  state: 'starting' | 'running' | 'backoff' | 'paused' | 'failed' | 'stopped';
  /** Records written (sink) or produced (source) since start. */
  records: number;
  /** Records sent to the dead-letter topic since start. */
  deadLettered: number;
  /** Failed attempts since start (each one retried). */
  retries: number;
  lastError: string | null;
  /** Sink: high watermark minus committed offset, summed over partitions (null until known). */
  lag: number | null;
  partitions: Array<{ partition: number; committed: number | null; highWatermark: number | null }>;
}
