/**
 * What streams/ needs of the web client, written down as a structural type so
 * that the library depends on the client's public surface only (never on
 * server/): consumer groups with manual commit (the groups interface) and
 * direct idempotent produce with the caller's own producer id and sequences,
 * and batch delivery (`onBatch`).
 * `createClient()`'s Client satisfies it once both capabilities are in.
 */
import type { ConsumedRecord, SendEvent } from '../web-client/index.ts';

export type { ConsumedRecord, SendEvent };

interface GroupSubscribeOptions {
  from?: 'earliest' | 'latest' | number | { timestamp: number };
  group?: string;
  partitions?: number[];
  autoCommit?: boolean;
  creditBytes?: number;
  onAssign?: (partitions: number[], generation: number) => Promise<void> | void;
  onRevoke?: (partitions: number[]) => Promise<void> | void;
  /** Records whose values are decoded when first read, and give their stored bytes (`valueBytes`, `valueEncoding`). */
  lazyValues?: boolean;
  /** The records of one frame (one partition, in offset order) in one call, instead of the per-record handler. */
  onBatch?: (records: ConsumedRecord[]) => Promise<void> | void;
}

export interface GroupSubscription {
  positions(): Record<string, number>;
  assignment?(): number[];
  commit?(offsets?: Record<number, number>): Promise<void>;
  close(): void;
}

interface ProduceResult {
  partition: number;
  offsets: number[];
  duplicate: boolean;
}

export interface StreamsClient {
  /** Streams reads its inputs with `opts.onBatch` and no handler (one await per frame, not per record). */
  subscribe(topic: string, opts: GroupSubscribeOptions, handler?: (r: ConsumedRecord) => void | Promise<void>): GroupSubscription;
  produce?(topic: string, events: SendEvent[], opts: { partition: number; producerId: string; sequence: number; timeoutMs?: number }): Promise<ProduceResult>;
  /** Batches written with BatchBuilder and sealed with their sequences (the output lanes' path). */
  produceBatches?(topic: string, partition: number, batches: readonly Uint8Array[], opts?: { timeoutMs?: number }): Promise<{ partition: number; lastOffset: number; duplicate: boolean }>;
  metadata?(topic: string): Promise<{ topic: string; partitions: number }>;
  on?(event: 'error', listener: (e: Error) => void): () => void;
}

/** The client with the capabilities streams/ cannot run without; checked once at start(). */
export type ReadyClient = StreamsClient & Required<Pick<StreamsClient, 'produce' | 'produceBatches' | 'metadata'>>;
