/**
 * The log interface the broker uses. Two engines implement it: the embedded
 * file engine (server/storage/file-*.ts) and NATS JetStream
 * (server/storage/jetstream/).
 *
 * Offsets are JS numbers (exact up to 2^53). A partition's offsets:
 *   earliest       <= the first offset still retained
 *   highWatermark  the first offset NOT yet durable under the topic's fsync
 *                  policy; consumers are served only below it
 *   logEnd         the next offset to be written (>= highWatermark)
 */
import type { Crc32c } from '../../protocol/crc32c.ts';
import { sectionDefaults } from '../settings.ts';

type CleanupPolicy = 'delete' | 'compact';
type FsyncPolicy = 'always' | 'interval' | 'never';

export interface TopicConfig {
  /** Delete closed segments older than this; -1 keeps forever. Default 7 days. */
  retentionMs: number;
  /** Delete the oldest closed segments while a partition is larger than this; -1 = no limit. */
  retentionBytes: number;
  cleanupPolicy: CleanupPolicy;
  /** How long a tombstone survives compaction. Default 1 day. */
  deleteRetentionMs: number;
  fsync: FsyncPolicy;
  fsyncIntervalMs: number;
  /** Roll the active segment at this size. Default 64 MiB. */
  segmentBytes: number;
  /** Roll the active segment at this age; -1 = never by age. Default 7 days. */
  segmentMs: number;
  /**
   * Copies of each partition kept by a replicated engine (JetStream: the
   * stream's replicas, 1..5). 0 lets the engine choose (JetStream: 3 on a
   * cluster of three or more nodes, else 1). The embedded engine ignores it.
   */
  replicas: number;
}

/** Topic defaults: the `topic.*` rows of the settings table. */
export const DEFAULT_TOPIC_CONFIG: Readonly<TopicConfig> = Object.freeze(sectionDefaults('topic'));

export interface TopicInfo {
  name: string;
  partitions: number;
  config: TopicConfig;
  createdAt: number;
}

export interface PartitionOffsets {
  earliest: number;
  highWatermark: number;
  logEnd: number;
  /** Bytes on disk for this partition's segments. */
  bytes: number;
}

export interface AppendResult {
  /** Offset of each record of the batch, in the batch's record order. */
  offsets: number[];
  baseOffset: number;
  /** Append time the hub stamped (for a duplicate: the original's). */
  appendTime: number;
  /** True when every record was already in the log (idempotent retry): nothing was appended. */
  duplicate: boolean;
}

export interface ReadResult {
  /**
   * Whole batches laid end to end, exactly as stored. The first batch
   * contains `offset` (it may start below it: consumers skip records below
   * what they asked for). Empty when nothing is available at `offset` yet.
   */
  bytes: Uint8Array;
  /**
   * The same bytes as `bytes`, in order, as the engine holds them when it
   * holds them in several buffers (the JetStream engine: one per message).
   * A reader that can take them avoids the join; `bytes` joins them when it
   * is first read. Absent when the engine has them in one buffer (the file
   * engine).
   */
  parts?: readonly Uint8Array[];
  /** The offset after the last record of the last batch returned (== offset when empty). */
  nextOffset: number;
  highWatermark: number;
}

/** Damage an engine found in its own files (the file engine's start-up scrub); the operator decides the repair. */
export interface StorageProblem {
  topic: string;
  partition: number;
  kind: 'missing-offsets' | 'corrupt-batch' | 'unreadable-segment';
  /** Offsets affected: [fromOffset, toOffset). */
  fromOffset: number;
  toOffset: number;
  file: string;
  message: string;
}

export interface LogStore {
  /** Recover every partition (truncate torn tails, rebuild indexes) and start background work. */
  open(): Promise<void>;
  listTopics(): TopicInfo[];
  getTopic(name: string): TopicInfo | undefined;
  /** Throws TributaryError TOPIC_EXISTS / BAD_CONFIG / BAD_TOPIC_NAME. */
  createTopic(name: string, partitions: number, config?: Partial<TopicConfig>): Promise<TopicInfo>;
  /** Change config and/or grow partitions (never shrink: BAD_CONFIG). */
  updateTopic(name: string, change: { partitions?: number; config?: Partial<TopicConfig> }): Promise<TopicInfo>;
  deleteTopic(name: string): Promise<void>;

  /**
   * Append one batch, encoded by protocol/batch.ts. The engine stamps base
   * offset and append time, and resolves once the batch is durable under the
   * topic's fsync policy. If the batch carries a producer id and sequences
   * and all of them are at or below the producer's highest appended sequence
   * on this partition, nothing is appended and the original offsets come
   * back with duplicate = true. A batch that overlaps (some old, some new
   * sequences) is refused with BAD_SEQUENCE; callers split on lastSequence().
   * The engine may keep and mutate `batch` (it takes ownership).
   * Errors: UNKNOWN_TOPIC, BAD_PARTITION, BAD_BATCH, CORRUPT_BATCH,
   * STORAGE_UNAVAILABLE (retriable; nothing acknowledged), OUT_OF_ORDER_SEQUENCE.
   */
  append(topic: string, partition: number, batch: Uint8Array): Promise<AppendResult>;

  /**
   * As append, but `batch` is only valid during this call (a transport
   * frame's bytes) and is never mutated: the engine copies what it keeps.
   */
  appendBorrowed?(topic: string, partition: number, batch: Uint8Array): Promise<AppendResult>;

  /** Highest sequence appended by `producerId` on this partition, or -1. */
  lastSequence(topic: string, partition: number, producerId: string): number;

  /**
   * Batches from the one containing `offset`, up to about `maxBytes` (at
   * least one whole batch if any is available), never at or past the high
   * watermark. Errors: OFFSET_OUT_OF_RANGE (details: earliest, logEnd) when
   * offset < earliest or offset > highWatermark.
   */
  read(topic: string, partition: number, offset: number, maxBytes: number): Promise<ReadResult>;

  /**
   * The same read answered synchronously from batches the engine still holds
   * in memory (a live subscriber at the tip), or null when they are not there
   * (then `read`, which also reports every error). Optional: an engine without
   * such a cache leaves it out. It saves a live delivery the promise hops of
   * `read`, a fixed cost per produce request (issue 13).
   */
  readCached?(topic: string, partition: number, offset: number, maxBytes: number): ReadResult | null;

  /** The first offset whose record timestamp (append time) is >= ts, or the high watermark if none. */
  offsetForTimestamp(topic: string, partition: number, timestampMs: number): Promise<number>;

  offsets(topic: string, partition: number): PartitionOffsets;

  /**
   * Called after the high watermark of a partition moves (new durable data),
   * synchronously from the engine. Returns an unsubscribe function.
   */
  onDurable(listener: (topic: string, partition: number, highWatermark: number) => void): () => void;

  /** Damage found in the engine's files so far (optional: engines that cannot see their files have none to report). */
  storageProblems?(): StorageProblem[];

  /**
   * Engines shared by several hubs (JetStream) elect one hub to coordinate
   * consumer groups and carry the messages between hubs; a one-machine engine
   * has none (its hub coordinates alone).
   */
  groupLink?(): GroupLink | null;

  /**
   * A subscription started (+1) or stopped (-1) following a partition. An
   * engine shared by several hubs watches a partition for other hubs' appends
   * only while this hub has readers of it (optional: one-machine engines see
   * every append themselves).
   */
  interest?(topic: string, partition: number, delta: 1 | -1): void;

  /** Flush, fsync, release the lock and every handle. */
  close(): Promise<void>;
}

export interface FileLogStoreOptions {
  dataDir: string;
  /** Hub-wide topic defaults; per-topic config overrides them. */
  defaults?: Partial<TopicConfig>;
  /** Native CRC-32C (the hub passes @node-rs/crc32's). */
  crc?: Crc32c;
  /** Max open segment file handles across all partitions (LRU). */
  maxOpenFiles?: number;
  /** Bytes of newest batches kept in memory per partition for live tailing. */
  tailCacheBytes?: number;
  /** Max producers tracked per partition (LRU; older ones fall back to the log). */
  maxProducersPerPartition?: number;
  /** How often retention and compaction run. */
  cleanupIntervalMs?: number;
  /** Bytes of log between sparse index entries. */
  indexIntervalBytes?: number;
  /** Bytes appended between producer-state snapshots. */
  snapshotIntervalBytes?: number;
  /** Memory for closed segments' indexes across the store. */
  maxIndexCacheBytes?: number;
  /** Keys one compaction pass may hold in memory. */
  maxCompactionKeys?: number;
  /** Optional structured logger. */
  log?: { info(obj: object, msg?: string): void; warn(obj: object, msg?: string): void; error(obj: object, msg?: string): void };
}

/**
 * Messaging between hubs over a shared engine, for consumer groups: one hub
 * holds the coordinator lease (elected through the engine), the others send
 * it their members' requests and receive its assignments. Bodies are JSON.
 */
export interface GroupLink {
  /** This hub's id (unique per process). */
  readonly hubId: string;
  /** The hub holding the coordinator lease, null while nobody does (an election is under way). */
  leader(): string | null;
  /** Called when the lease moves (or is lost); returns an unsubscribe function. */
  onLeaderChange(listener: (leader: string | null) => void): () => void;
  /** A request to the coordinator; its handler's result, or its TributaryError, rebuilt. */
  request(body: object): Promise<unknown>;
  /** A message to the coordinator, in order with this hub's other messages and requests to it. */
  send(body: object): void;
  /** A message to one hub. */
  tell(hubId: string, body: object): void;
  /** Handlers for what arrives: requests and messages to this hub as coordinator, and messages to this hub. */
  serve(handlers: { request(body: unknown): Promise<unknown>; message(body: unknown): void; told(body: unknown): void }): void;
}
