/**
 * Direct idempotent produce: for code that chooses its own producer id and
 * sequences (stream processing's deterministic output, connectors' sources),
 * beside the outbox's `send()`.
 *
 * Nothing is queued in the outbox: the caller's own state (a committed input
 * offset, a source position) is what makes a retry after a crash send the
 * same records under the same sequences, and the hub's per-producer
 * sequences turn such a retry into `duplicate: true` with the original
 * offsets (DESIGN idea 2). Within one call, a retry after a dropped
 * connection or a retriable refusal is therefore always safe.
 */
import { LIMITS, MAX_BATCHES_PER_FRAME, TributaryError, assertTopicName, readRecordCount, type AckFrame, type Crc32c } from '../protocol/index.ts';
import type { Connection } from './connection.ts';
import { ClientError } from './errors.ts';
import { BatchBuilder } from './batch-builder.ts';
import type { SendEvent } from './event-input.ts';
import { batchCrc32c } from './runtime.ts';

export interface DirectProduceOptions {
  /** Every event goes to this partition. */
  partition: number;
  /** Stable across restarts; sequences are counted per (producerId, partition). */
  producerId: string;
  /** Sequence of events[0]; event i has sequence + i. Dense: the hub refuses a gap. */
  sequence: number;
  /** Give up (rejecting with the last failure) after this long. Default 60 s. */
  timeoutMs?: number;
}

export interface DirectProduceResult {
  partition: number;
  /** Offset of each event, in order. */
  offsets: number[];
  /** True when the hub had appended these sequences before (a retry): nothing new was appended. */
  duplicate: boolean;
}

export interface TopicMetadata {
  topic: string;
  partitions: number;
}

const DEFAULT_TIMEOUT_MS = 60_000;
const BACKOFF_INITIAL_MS = 50;
const BACKOFF_MAX_MS = 2_000;

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function retriable(err: unknown): boolean {
  return (err instanceof ClientError || err instanceof TributaryError) && err.retriable;
}

/** Resolves once the connection is open, or rejects after `ms`. */
function waitOpen(conn: Connection, ms: number): Promise<void> {
  if (conn.isOpen) return Promise.resolve();
  return new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new ClientError('DISCONNECTED', `not connected within ${ms} ms`));
    }, ms);
    const off = conn.on('open', () => {
      clearTimeout(timer);
      off();
      resolve();
    });
  });
}

/**
 * Runs `attempt` until it succeeds, retrying retriable failures with full
 * jitter backoff (capped) until the deadline; the last failure is rethrown.
 */
async function withRetries<T>(conn: Connection, timeoutMs: number, attempt: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (let n = 0; ; n++) {
    const left = deadline - Date.now();
    if (left <= 0) throw new ClientError('DISCONNECTED', `no answer from the hub within ${timeoutMs} ms`);
    try {
      await waitOpen(conn, left);
      return await attempt();
    } catch (err) {
      if (!retriable(err) || Date.now() >= deadline) throw err;
      const hinted = err instanceof TributaryError ? Number((err.details as { retryAfterMs?: unknown } | undefined)?.retryAfterMs) : NaN;
      const wait = Number.isFinite(hinted) && hinted > 0 ? hinted : Math.random() * Math.min(BACKOFF_MAX_MS, BACKOFF_INITIAL_MS * 2 ** n);
      await sleep(Math.min(wait, Math.max(0, deadline - Date.now())));
    }
  }
}

/**
 * A batch is sealed once it holds this many bytes: with its last record
 * (a value is at most LIMITS.maxValueBytes) it stays well under
 * LIMITS.maxBatchBytes and the frame limit; most calls fit one batch.
 */
const BATCH_BUDGET_BYTES = 1024 * 1024;
/** Bytes of batches per produce frame, leaving room for the frame's own fields under LIMITS.maxFrameBytes. */
const FRAME_BUDGET_BYTES = LIMITS.maxFrameBytes - 64 * 1024;

/**
 * Sends the events in the batch form (docs/protocol.md): the client encodes
 * the record batches and the hub stores those bytes as they are, stamping
 * only base offset and append time. Usually one batch; more, each with the
 * next dense sequences, when the events exceed LIMITS.maxRecordsPerBatch or
 * the byte budget. Frames go one after another, each retried on its own, so
 * a retry resends the same batches under the same sequences.
 */
export async function directProduce(conn: Connection, topic: string, events: SendEvent[], o: DirectProduceOptions): Promise<DirectProduceResult> {
  assertTopicName(topic);
  if (!Array.isArray(events) || events.length === 0) throw new TributaryError('BAD_REQUEST', 'produce needs a non-empty array of events');
  if (!Number.isInteger(o?.partition) || o.partition < 0) throw new TributaryError('BAD_PARTITION', 'partition must be a non-negative integer');
  if (typeof o.producerId !== 'string' || o.producerId.length === 0) throw new TributaryError('BAD_REQUEST', 'producerId must be a non-empty string');
  if (!Number.isSafeInteger(o.sequence) || o.sequence < 0) throw new TributaryError('BAD_SEQUENCE', 'sequence must be a non-negative integer');
  const crc = await batchCrc32c();
  const frames = encodeFrames(events, o, crc);
  const timeoutMs = o.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const offsets: number[] = [];
  let duplicate = true;
  for (const batches of frames) {
    const frame = { t: 'produce', topic, batches: batches.map((b) => ({ p: o.partition, b })) };
    const ack = (await withRetries(conn, timeoutMs, () => conn.request(frame))) as unknown as AckFrame;
    if (ack.dup !== true) duplicate = false;
    if (ack.parts.length !== batches.length) throw new TributaryError('INTERNAL', `the hub acked ${ack.parts.length} parts for ${batches.length} batches`);
    ack.parts.forEach((part, i) => {
      const n = readRecordCount(batches[i]);
      for (let k = 0; k < n; k++) offsets.push(part.offs ? part.offs[k] : part.o + k);
    });
  }
  return { partition: o.partition, offsets, duplicate };
}

/** Validates and encodes the events into batches with dense sequences from o.sequence, grouped into frames. */
function encodeFrames(events: SendEvent[], o: DirectProduceOptions, crc: Crc32c): Uint8Array[][] {
  const now = Date.now();
  const builder = new BatchBuilder(o.producerId);
  const batches: Uint8Array[] = [];
  let nextSeq = o.sequence;
  for (const e of events) {
    builder.addEvent(e, now);
    if (builder.count === LIMITS.maxRecordsPerBatch || builder.byteLength >= BATCH_BUDGET_BYTES) {
      const n = builder.count;
      batches.push(builder.seal(nextSeq, crc));
      nextSeq += n;
    }
  }
  if (builder.count > 0) batches.push(builder.seal(nextSeq, crc));
  return framesOf(batches);
}

/** Groups batches into produce frames: at most MAX_BATCHES_PER_FRAME and FRAME_BUDGET_BYTES each (one batch at least). */
function framesOf(batches: readonly Uint8Array[]): Uint8Array[][] {
  const frames: Uint8Array[][] = [];
  let frame: Uint8Array[] = [];
  let frameBytes = 0;
  for (const b of batches) {
    if (frame.length === MAX_BATCHES_PER_FRAME || (frame.length > 0 && frameBytes + b.length > FRAME_BUDGET_BYTES)) {
      frames.push(frame);
      frame = [];
      frameBytes = 0;
    }
    frame.push(b);
    frameBytes += b.length;
  }
  frames.push(frame);
  return frames;
}

export interface BatchesProduceResult {
  partition: number;
  /** Offset of the last record of the last batch. */
  lastOffset: number;
  /** True when the hub had appended every batch before (a retry). */
  duplicate: boolean;
}

/**
 * Sends batches built with BatchBuilder and sealed with their sequences
 * (each batch's base sequence follows the previous batch's last, dense) to
 * one partition: the path of callers that write records straight into
 * their final bytes (stream processing's output lanes). Retried like
 * produce(): a retry resends the same bytes, so the same sequences.
 */
export async function produceBatches(conn: Connection, topic: string, partition: number, batches: readonly Uint8Array[], timeoutMs = DEFAULT_TIMEOUT_MS): Promise<BatchesProduceResult> {
  assertTopicName(topic);
  if (batches.length === 0) throw new TributaryError('BAD_REQUEST', 'produceBatches needs at least one batch');
  if (!Number.isInteger(partition) || partition < 0) throw new TributaryError('BAD_PARTITION', 'partition must be a non-negative integer');
  let lastOffset = -1;
  let duplicate = true;
  for (const frameBatches of framesOf(batches)) {
    const frame = { t: 'produce', topic, batches: frameBatches.map((b) => ({ p: partition, b })) };
    const ack = (await withRetries(conn, timeoutMs, () => conn.request(frame))) as unknown as AckFrame;
    if (ack.dup !== true) duplicate = false;
    if (ack.parts.length !== frameBatches.length) throw new TributaryError('INTERNAL', `the hub acked ${ack.parts.length} parts for ${frameBatches.length} batches`);
    const part = ack.parts[ack.parts.length - 1];
    const n = readRecordCount(frameBatches[frameBatches.length - 1]);
    lastOffset = part.offs ? part.offs[n - 1] : part.o + n - 1;
  }
  return { partition, lastOffset, duplicate };
}

export async function topicMetadata(conn: Connection, topic: string, timeoutMs = DEFAULT_TIMEOUT_MS): Promise<TopicMetadata> {
  assertTopicName(topic);
  const ok = (await withRetries(conn, timeoutMs, () => conn.request({ t: 'metadata', topic }))) as unknown as { topic: string; partitions: number };
  return { topic: ok.topic, partitions: ok.partitions };
}
