/**
 * Produce: pick each record's partition, encode one batch per partition,
 * append, and describe where every record landed (the compact ack).
 *
 * Idempotence (Kafka's idempotent producer): record i has sequence seq + i,
 * counted by the producer across the whole topic. Per partition the records
 * are in ascending sequence order, so those at or below the producer's
 * highest sequence there form a prefix: that prefix is a retry and is sent to
 * the engine as its own batch, which answers with the original offsets
 * (duplicate = true) without appending; the rest is appended once. A retry
 * that spans partitions where only some were appended (a crash in between)
 * thus gets its old offsets where it landed and is appended where it did not.
 *
 * Gaps (Kafka's idempotent producer refuses them too): a request must start
 * at or below the next sequence the hub expects from that producer, or it is
 * refused with SEQUENCE_GAP (retriable, details.expected) and nothing is
 * appended, so a pipelined request can never land ahead of an earlier one
 * that was refused. Where "next" is counted depends on the form:
 * - records form: the hub numbers records seq + i across the topic and
 *   spreads them over partitions, so per partition the sequences are sparse
 *   and only the topic has a dense count: the next expected is one past the
 *   highest over all the topic's partitions;
 * - batch form: the producer chose each batch's partition and numbers per
 *   (producer, partition), densely (Kafka's rule): the next expected is one
 *   past that partition's highest, and a batch's sequences must be dense.
 * A producer the hub holds no state for (new, or its batches gone with
 * retention) may start anywhere.
 */
import { decodeBatchTrusted, encodeBatch, readRecordCount } from '../../protocol/batch.ts';
import type { Crc32c } from '../../protocol/crc32c.ts';
import { TributaryError } from '../../protocol/errors.ts';
import type { AckPart, ProduceBatchesFrame, ProducedBatch } from '../../protocol/frames.ts';
import { partitionForKey, partitionForUnkeyed } from '../../protocol/partitioner.ts';
import type { EncodedRecord, Header } from '../../protocol/record.ts';
import type { AppendResult, LogStore } from '../storage/log-store.ts';
import { copyOf } from '../storage/write-buffers.ts';
import { ProducerSequences } from './producer-sequences.ts';
import { stageTiming } from './stage-timing.ts';
import type { Topics } from './topics.ts';

export type ProduceRecord = EncodedRecord & { partition?: number };

export interface ProduceRequest {
  topic: string;
  /** Producer id; with `seq`, makes the request idempotent. */
  pid?: string;
  /** Sequence of the first record. */
  seq?: number;
  records: ProduceRecord[];
  batches?: undefined;
}

export interface ProduceResult {
  /** Per partition, where the request's records landed (AckFrame.parts). */
  parts: AckPart[];
  /** True when no record was appended by this request: all were retries of appended ones. */
  duplicate: boolean;
  appendedRecords: number;
  appendedBytes: number;
  duplicateRecords: number;
}

export interface ProduceSettings {
  maxFutureTimestampMs: number;
  crc: Crc32c;
}

interface PartitionOutcome {
  offsets: number[];
  duplicates: number;
  bytes: number;
}

/** Tracks appends in flight so shutdown can wait for them. */
export class InFlightAppends {
  private count = 0;
  private idle: (() => void) | null = null;

  track<T>(p: Promise<T>): Promise<T> {
    this.count++;
    const done = (): void => {
      if (--this.count === 0 && this.idle) this.idle();
    };
    p.then(done, done);
    return p;
  }

  get size(): number {
    return this.count;
  }

  /** Resolves when no append is in flight (or at the deadline). */
  drained(timeoutMs: number): Promise<boolean> {
    if (this.count === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), timeoutMs);
      this.idle = () => {
        clearTimeout(timer);
        this.idle = null;
        resolve(true);
      };
    });
  }
}

const copy = (b: Uint8Array): Uint8Array => b.slice();
/** Holes remembered at once; past it the oldest is forgotten (a hub restart forgets them all: see docs/protocol.md). */
const MAX_HOLES = 10_000;

/** Copies every byte view out of a request (for requests that must outlive a transport callback). */
function detachRecords(records: ProduceRecord[]): ProduceRecord[] {
  return records.map((r) => {
    const out: ProduceRecord = {
      key: r.key instanceof Uint8Array ? copy(r.key) : r.key,
      value: r.value === null ? null : copy(r.value),
      encoding: r.encoding,
      headers: r.headers.map(([n, v]): Header => [n, typeof v === 'string' ? v : copy(v)]),
      timestamp: r.timestamp,
    };
    if (r.partition !== undefined) out.partition = r.partition;
    return out;
  });
}

export class Producer {
  private readonly sequences: ProducerSequences;
  /** Per (topic, producer): the lowest sequence of a records-form request refused on some partitions only. */
  private readonly holes = new Map<string, number>();
  /** Per topic: the rotating counter that spreads records without key or producer id. */
  private readonly spread = new Map<string, number>();

  constructor(
    private readonly store: LogStore,
    private readonly topics: Topics,
    private readonly settings: ProduceSettings,
    readonly inFlight: InFlightAppends,
  ) {
    this.sequences = new ProducerSequences(store);
  }

  /**
   * Appends a request and resolves once every record is durable. Byte views
   * in `req.records` are only read synchronously unless the topic must be
   * created first, in which case they are copied before waiting.
   */
  async produce(req: ProduceRequest): Promise<ProduceResult> {
    const startedAt = stageTiming ? stageTiming.now() : 0;
    const records = req.records;
    if (records.length === 0) throw new TributaryError('BAD_RECORD', 'records must not be empty');
    this.checkTimestamps(records);
    let info = this.topics.get(req.topic);
    if (!info) {
      const detached = { ...req, records: detachRecords(records) };
      await this.topics.ensure(req.topic);
      return this.produce(detached);
    }
    const n = info.partitions;
    const idempotent = req.pid !== undefined && req.seq !== undefined;
    if (idempotent) this.checkTopicGap(req.topic, n, req.pid!, req.seq!);
    const groups = this.assignPartitions(req, n);
    const pending: Array<Promise<PartitionOutcome>> = [];
    for (const [p, idx] of groups) {
      stageTiming?.appending(req.topic, p, startedAt);
      pending.push(idempotent ? this.appendIdempotent(req, p, idx) : this.appendPlain(req.topic, p, idx, records));
    }
    const settled = await Promise.allSettled(pending);
    stageTiming?.durable(startedAt);
    if (idempotent) this.noteHoles(req, groups, settled);
    const parts: AckPart[] = [];
    let appendedRecords = 0;
    let appendedBytes = 0;
    let duplicateRecords = 0;
    let k = 0;
    for (const [p, idx] of groups) {
      const s = settled[k++];
      if (s.status === 'rejected') throw s.reason;
      const { offsets, duplicates, bytes } = s.value;
      duplicateRecords += duplicates;
      appendedRecords += idx.length - duplicates;
      appendedBytes += bytes;
      parts.push(ackPart(p, idx, offsets, groups.size > 1));
    }
    return { parts, duplicate: duplicateRecords === records.length, appendedRecords, appendedBytes, duplicateRecords };
  }

  /**
   * Appends batches the producer encoded itself (the frame decoder checked
   * each one whole). They are stored as they are: no record is decoded or
   * re-encoded. Part i of the result answers batch i.
   */
  async produceBatches(req: Pick<ProduceBatchesFrame, 'topic' | 'batches'>): Promise<ProduceResult> {
    // The frame's bytes do not outlive the transport callback: everything that keeps them past this synchronous part
    // copies them (the engine's appendBorrowed, a retry, the wait for a new topic below).
    const startedAt = stageTiming ? stageTiming.now() : 0;
    let batches = req.batches;
    const limit = Date.now() + this.settings.maxFutureTimestampMs;
    let total = 0;
    for (let i = 0; i < batches.length; i++) {
      total += batches[i].recordCount;
      if (batches[i].maxTimestamp > limit) throw new TributaryError('TIMESTAMP_IN_FUTURE', `batch ${i}: a timestamp is more than ${this.settings.maxFutureTimestampMs} ms in the future`, { batch: i });
    }
    let info = this.topics.get(req.topic);
    if (!info) {
      batches = batches.map((b) => ({ ...b, batch: copyOf(b.batch) }));
      info = await this.topics.ensure(req.topic);
    }
    for (let i = 0; i < batches.length; i++) {
      if (batches[i].partition >= info.partitions)
        throw new TributaryError('BAD_PARTITION', `batch ${i}: partition ${batches[i].partition} does not exist; ${req.topic} has ${info.partitions}`, { batch: i, partitions: info.partitions });
    }
    this.checkPartitionGaps(req.topic, batches);
    if (stageTiming) for (const b of batches) stageTiming.appending(req.topic, b.partition, startedAt);
    if (batches.length === 1) {
      // One batch (what the web client sends per lane): its outcome is the request's, without allSettled's hops.
      const b = batches[0];
      const o = await this.appendProduced(req.topic, b);
      stageTiming?.durable(startedAt);
      const parts = [ackPart(b.partition, [], o.offsets, false)];
      return { parts, duplicate: o.duplicates === b.recordCount, appendedRecords: b.recordCount - o.duplicates, appendedBytes: o.bytes, duplicateRecords: o.duplicates };
    }
    const settled = await Promise.allSettled(batches.map((b) => this.appendProduced(req.topic, b)));
    stageTiming?.durable(startedAt);
    const parts: AckPart[] = [];
    let appendedRecords = 0;
    let appendedBytes = 0;
    let duplicateRecords = 0;
    for (let i = 0; i < batches.length; i++) {
      const s = settled[i];
      if (s.status === 'rejected') throw s.reason;
      duplicateRecords += s.value.duplicates;
      appendedRecords += batches[i].recordCount - s.value.duplicates;
      appendedBytes += s.value.bytes;
      parts.push(ackPart(batches[i].partition, [], s.value.offsets, false));
    }
    return { parts, duplicate: duplicateRecords === total, appendedRecords, appendedBytes, duplicateRecords };
  }

  /**
   * Records form: the request must start at or below one past the producer's
   * highest sequence on the topic, and at or below the lowest sequence of a
   * request that was appended on only some of its partitions (a hole): a
   * pipelined request must not land on a partition ahead of the part of an
   * earlier one that was refused there.
   */
  private checkTopicGap(topic: string, partitions: number, pid: string, seq: number): void {
    const key = `${topic}\u0000${pid}`;
    const hole = this.holes.get(key);
    if (hole !== undefined && seq > hole) {
      throw new TributaryError('SEQUENCE_GAP', `sequence ${seq} skips past ${hole}, a sequence of an earlier request that was not appended on every partition; resend the requests from it`, {
        expected: hole,
      });
    }
    let highest = -1;
    for (let p = 0; p < partitions; p++) {
      const h = this.sequences.highest(topic, p, pid);
      if (h > highest) highest = h;
    }
    if (highest >= 0 && seq > highest + 1) {
      throw new TributaryError('SEQUENCE_GAP', `sequence ${seq} skips past ${highest + 1}, the next this producer's requests on ${topic} must start at or below; resend the requests before it`, {
        expected: highest + 1,
      });
    }
  }

  /** After a records-form request: open a hole where a partition's part failed, close it when a request covering it went through. */
  private noteHoles(req: ProduceRequest, groups: Map<number, number[]>, settled: Array<PromiseSettledResult<PartitionOutcome>>): void {
    const key = `${req.topic}\u0000${req.pid}`;
    const seq = req.seq!;
    let lowestFailed = Infinity;
    let appended = false;
    let k = 0;
    for (const [, idx] of groups) {
      if (settled[k++].status === 'rejected') {
        if (seq + idx[0] < lowestFailed) lowestFailed = seq + idx[0];
      } else appended = true;
    }
    const hole = this.holes.get(key);
    // Only a partial failure leaves a hole: a request refused on every partition did not move the topic's highest.
    if (lowestFailed !== Infinity && appended) {
      if (hole === undefined || lowestFailed < hole) {
        this.holes.delete(key); // re-insert: the map's order is the eviction order
        this.holes.set(key, lowestFailed);
        if (this.holes.size > MAX_HOLES) this.holes.delete(this.holes.keys().next().value!);
      }
    } else if (hole !== undefined && seq <= hole && seq + req.records.length > hole) this.holes.delete(key);
  }

  /**
   * Batch form: per (producer, partition), every batch dense and starting at
   * or below one past the highest, the frame's earlier batches included.
   * Checked for the whole frame before anything of it is appended.
   */
  private checkPartitionGaps(topic: string, batches: ProducedBatch[]): void {
    let seen: Map<string, number> | undefined;
    for (let i = 0; i < batches.length; i++) {
      const b = batches[i];
      if (b.producerId === '') continue;
      if (b.lastSequence - b.baseSequence !== b.recordCount - 1) {
        throw new TributaryError('BAD_SEQUENCE', `batch ${i}: sequences must be dense (record k has baseSequence + k) in batch form`, { batch: i });
      }
      const key = `${b.partition}\u0000${b.producerId}`;
      seen ??= new Map();
      const highest = seen.get(key) ?? this.sequences.highest(topic, b.partition, b.producerId);
      if (highest >= 0 && b.baseSequence > highest + 1) {
        throw new TributaryError(
          'SEQUENCE_GAP',
          `batch ${i}: sequence ${b.baseSequence} skips past ${highest + 1}, the next this producer's batches on ${topic}/${b.partition} must start at or below; resend the batches before it`,
          { batch: i, partition: b.partition, expected: highest + 1 },
        );
      }
      if (b.lastSequence > highest) seen.set(key, b.lastSequence);
    }
  }

  private appendProduced(topic: string, b: ProducedBatch): Promise<PartitionOutcome> {
    const p = b.partition;
    const pid = b.producerId;
    if (pid === '' || b.baseSequence > this.sequences.highest(topic, p, pid)) {
      const store = this.store;
      const append = this.inFlight.track(store.appendBorrowed ? store.appendBorrowed(topic, p, b.batch) : store.append(topic, p, copyOf(b.batch)));
      if (pid !== '') this.sequences.track(topic, p, pid, b.lastSequence, append);
      return append.then((res) => ({ offsets: res.offsets, duplicates: res.duplicate ? b.recordCount : 0, bytes: res.duplicate ? 0 : b.batch.length }));
    }
    // A retry (whole, or overlapping what is appended): settle what is in flight, then let the engine answer.
    return this.resolveRetry(topic, p, pid, copyOf(b.batch), this.sequences.settledNow(topic, p, pid));
  }

  private checkTimestamps(records: ProduceRecord[]): void {
    const limit = Date.now() + this.settings.maxFutureTimestampMs;
    for (let i = 0; i < records.length; i++) {
      if (records[i].timestamp > limit) {
        throw new TributaryError('TIMESTAMP_IN_FUTURE', `record ${i}: timestamp ${records[i].timestamp} is more than ${this.settings.maxFutureTimestampMs} ms in the future`, { index: i });
      }
    }
  }

  /** Partition → indices of the request's records, ascending; partitions in ascending order. */
  private assignPartitions(req: ProduceRequest, n: number): Map<number, number[]> {
    const records = req.records;
    const groups = new Map<number, number[]>();
    let spreadBase = -1;
    for (let i = 0; i < records.length; i++) {
      const r = records[i];
      let p: number;
      if (r.partition !== undefined) {
        if (r.partition >= n) throw new TributaryError('BAD_PARTITION', `record ${i}: partition ${r.partition} does not exist; ${req.topic} has ${n}`, { index: i, partitions: n });
        p = r.partition;
      } else if (r.key !== null) p = partitionForKey(r.key, n);
      else if (req.pid !== undefined && req.seq !== undefined) p = partitionForUnkeyed(req.pid, req.seq + i, n);
      else {
        if (spreadBase < 0) {
          spreadBase = this.spread.get(req.topic) ?? 0;
          this.spread.set(req.topic, (spreadBase + records.length) % Number.MAX_SAFE_INTEGER);
        }
        p = partitionForUnkeyed('', spreadBase + i, n);
      }
      let g = groups.get(p);
      if (!g) groups.set(p, (g = []));
      g.push(i);
    }
    if (groups.size <= 1) return groups;
    return new Map([...groups].sort((a, b) => a[0] - b[0]));
  }

  private async appendPlain(topic: string, p: number, idx: number[], records: ProduceRecord[]): Promise<PartitionOutcome> {
    const batch = encodeBatch({ records: idx.length === records.length ? records : idx.map((i) => records[i]) }, this.settings.crc);
    const bytes = batch.length;
    const res = await this.inFlight.track(this.store.append(topic, p, batch));
    return { offsets: res.offsets, duplicates: res.duplicate ? idx.length : 0, bytes };
  }

  /** Encodes records [from, to) of a partition's group with their own sequences. */
  private encodeRange(req: ProduceRequest, idx: number[], from: number, to: number): Uint8Array {
    const seq = req.seq!;
    const base = seq + idx[from];
    if (idx[to - 1] - idx[from] === to - from - 1) {
      // Consecutive request records (the usual case: one partition): their sequence deltas are their
      // positions, the encoder's default, so the records go in as they are, without a copy each.
      const run = from === 0 && to === req.records.length ? req.records : req.records.slice(idx[from], idx[to - 1] + 1);
      return encodeBatch({ producerId: req.pid, baseSequence: base, records: run }, this.settings.crc);
    }
    const recs = new Array<ProduceRecord & { sequenceDelta: number }>(to - from);
    for (let k = from; k < to; k++) {
      const r = req.records[idx[k]];
      recs[k - from] = { key: r.key, value: r.value, encoding: r.encoding, headers: r.headers, timestamp: r.timestamp, sequenceDelta: seq + idx[k] - base };
    }
    return encodeBatch({ producerId: req.pid, baseSequence: base, records: recs }, this.settings.crc);
  }

  private appendIdempotent(req: ProduceRequest, p: number, idx: number[]): Promise<PartitionOutcome> {
    const { topic, pid } = req as { topic: string; pid: string };
    const seq = req.seq!;
    const highest = this.sequences.highest(topic, p, pid);
    let split = 0; // records [0, split) are retries of records already appended (or in flight)
    while (split < idx.length && seq + idx[split] <= highest) split++;
    // Both batches are encoded now, synchronously: the request's byte views may not outlive this call.
    const retryBatch = split > 0 ? this.encodeRange(req, idx, 0, split) : null;
    const earlier = retryBatch ? this.sequences.settledNow(topic, p, pid) : undefined;
    let fresh: Promise<AppendResult> | null = null;
    let freshBytes = 0;
    if (split < idx.length) {
      const batch = this.encodeRange(req, idx, split, idx.length);
      freshBytes = batch.length;
      fresh = this.inFlight.track(this.store.append(topic, p, batch));
      this.sequences.track(topic, p, pid, seq + idx[idx.length - 1], fresh);
    }
    const retried = retryBatch ? this.resolveRetry(topic, p, pid, retryBatch, earlier) : null;
    return (async () => {
      const [r, f] = await Promise.all([retried, fresh]);
      const offsets = r ? [...r.offsets] : [];
      if (f) for (const o of f.offsets) offsets.push(o);
      if (offsets.length !== idx.length) throw new TributaryError('INTERNAL', `engine returned ${offsets.length} offsets for ${idx.length} records`);
      return { offsets, duplicates: r ? r.duplicates : 0, bytes: freshBytes + (r ? r.bytes : 0) };
    })();
  }

  /**
   * The retried prefix: once the appends that were in flight when it arrived
   * have settled, the engine answers with the original offsets. If an
   * original failed, its records are not in the log and the engine appends
   * them now (all above its highest) or refuses a mix (BAD_SEQUENCE), which
   * is split once more at the engine's own highest sequence.
   */
  private async resolveRetry(topic: string, p: number, pid: string, batch: Uint8Array, earlier: Promise<unknown> | undefined): Promise<PartitionOutcome> {
    if (earlier) await earlier;
    const count = readRecordCount(batch);
    try {
      const res = await this.inFlight.track(this.store.append(topic, p, batch));
      return { offsets: res.offsets, duplicates: res.duplicate ? count : 0, bytes: res.duplicate ? 0 : batch.length };
    } catch (err) {
      if (!(err instanceof TributaryError) || err.code !== 'BAD_SEQUENCE') throw err;
      return this.splitRetry(topic, p, pid, batch);
    }
  }

  private async splitRetry(topic: string, p: number, pid: string, batch: Uint8Array): Promise<PartitionOutcome> {
    const recs = decodeBatchTrusted(batch);
    const last = this.store.lastSequence(topic, p, pid);
    let split = 0;
    while (split < recs.length && recs[split].sequence <= last) split++;
    const part = (from: number, to: number): Uint8Array => {
      const base = recs[from].sequence;
      return encodeBatch({ producerId: pid, baseSequence: base, records: recs.slice(from, to).map((r) => ({ ...r, sequenceDelta: r.sequence - base })) }, this.settings.crc);
    };
    if (split === 0 || split === recs.length) throw new TributaryError('BAD_SEQUENCE', 'sequences overlap the producer state inconsistently; retry the request');
    const dup = await this.inFlight.track(this.store.append(topic, p, part(0, split)));
    const rest = part(split, recs.length);
    const fresh = await this.inFlight.track(this.store.append(topic, p, rest));
    return { offsets: [...dup.offsets, ...fresh.offsets], duplicates: dup.duplicate ? split : 0, bytes: rest.length };
  }
}

/** The compact ack part: `r` only when the request spans partitions, `offs` only when offsets are not consecutive. */
function ackPart(p: number, idx: number[], offsets: number[], withIndices: boolean): AckPart {
  const part: AckPart = { p, o: offsets[0] };
  if (withIndices) part.r = idx;
  for (let k = 1; k < offsets.length; k++) {
    if (offsets[k] !== offsets[0] + k) {
      part.offs = offsets;
      break;
    }
  }
  return part;
}
