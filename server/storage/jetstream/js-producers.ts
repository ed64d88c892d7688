/**
 * Idempotent producer state of one partition on JetStream, beyond the
 * duplicate window. The state is the log itself: a producer's batches go to
 * its own subject, so "its last batch here" is one get-last-by-subject away,
 * and appends are guarded by the expected last subject sequence, so two hubs
 * can never both append the same producer's batch (one gets "wrong last
 * sequence" and finds the other's). JetStream's message id (pid:first-last)
 * answers retries inside the duplicate window without a lookup.
 *
 * This table is a cache of that state (bounded, LRU): a miss costs one
 * lookup; a retry older than the cached batches walks the producer's chain
 * (each batch's Trib-Prev header) back.
 */
import type { JetStreamManager } from 'nats';
import { TributaryError } from '../../../protocol/errors.ts';
import type { AppendResult } from '../log-store.ts';
import { H_PREV, producerOfBatch, refOfBatch } from './stored-batch.ts';

const BATCHES_PER_PRODUCER = 5;
/** A retry is looked for this many batches back in the producer's chain before giving up. */
const MAX_CHAIN_WALK = 1000;

export interface CachedBatch {
  firstSeq: number;
  lastSeq: number;
  /** Stream sequence; 0 while the append is in flight. */
  seq: number;
  prevSeq: number;
  base: number;
  count: number;
  appendTime: number;
  /** Settles once the batch is stored (resolves with its result) or failed. */
  done: Promise<AppendResult> | null;
}

export interface ProducerEntry {
  /** Highest sequence appended or in flight. */
  lastSeq: number;
  /** Stream sequence of the producer's last stored batch (0 if none): the expected last subject sequence. */
  subjSeq: number;
  /** Stream sequence the next send expects as the producer's last (subjSeq plus what is in flight). */
  predSubjSeq: number;
  batches: CachedBatch[];
}

export class JsProducerTable {
  private readonly map = new Map<string, ProducerEntry>();
  private readonly lookups = new Map<string, Promise<ProducerEntry>>();

  constructor(
    private readonly jsm: JetStreamManager,
    private readonly stream: string,
    private readonly subjectOf: (pid: string) => string,
    private readonly maxProducers: number,
  ) {}

  cached(pid: string): ProducerEntry | undefined {
    const e = this.map.get(pid);
    if (e) {
      this.map.delete(pid);
      this.map.set(pid, e);
    }
    return e;
  }

  forget(pid: string): void {
    this.map.delete(pid);
  }

  clear(): void {
    this.map.clear();
  }

  set(pid: string, e: ProducerEntry): void {
    this.map.delete(pid);
    this.map.set(pid, e);
    if (this.map.size > this.maxProducers) this.map.delete(this.map.keys().next().value as string);
  }

  /** The cached entry, or the producer's last batch read from the stream. */
  get(pid: string): ProducerEntry | Promise<ProducerEntry> {
    return this.cached(pid) ?? this.lookup(pid);
  }

  lookup(pid: string): Promise<ProducerEntry> {
    let p = this.lookups.get(pid);
    if (!p) {
      p = this.fetchLast(pid).finally(() => this.lookups.delete(pid));
      this.lookups.set(pid, p);
    }
    return p;
  }

  private async fetchLast(pid: string): Promise<ProducerEntry> {
    const m = await this.getMessage({ last_by_subj: this.subjectOf(pid) });
    const e: ProducerEntry = { lastSeq: -1, subjSeq: 0, predSubjSeq: 0, batches: [] };
    if (m) {
      const b = toCached(m.seq, m.data, Number(m.header.get(H_PREV) || 0));
      e.lastSeq = b.lastSeq;
      e.subjSeq = e.predSubjSeq = m.seq;
      e.batches.push(b);
    }
    // An append of this producer that raced the lookup wins: keep its (newer) entry.
    const raced = this.map.get(pid);
    if (raced && raced.lastSeq >= e.lastSeq) return raced;
    this.set(pid, e);
    return e;
  }

  /** Records a batch being appended (seq 0 until stored). */
  add(e: ProducerEntry, b: CachedBatch): void {
    if (e.batches.length >= BATCHES_PER_PRODUCER) e.batches.shift();
    e.batches.push(b);
    if (b.lastSeq > e.lastSeq) e.lastSeq = b.lastSeq;
  }

  /**
   * The original offsets of a retried batch [firstSeq, lastSeq] of `count`
   * records, from the cache or by walking the producer's chain back. A retry
   * may be cut differently from what was stored (a client that lost its
   * acks in a cut re-batches what it resends): if whole stored batches of
   * this producer cover the range exactly, their offsets answer it.
   */
  async findDuplicate(pid: string, e: ProducerEntry, firstSeq: number, lastSeq: number, count: number): Promise<AppendResult> {
    const match = (b: CachedBatch): boolean => b.firstSeq === firstSeq && b.lastSeq === lastSeq && b.count === count;
    const inside = (b: CachedBatch): boolean => b.firstSeq >= firstSeq && b.lastSeq <= lastSeq;
    const parts = new Map<number, CachedBatch>();
    for (const b of e.batches) {
      if (!match(b)) {
        if (inside(b)) parts.set(b.firstSeq, b);
        continue;
      }
      if (b.done) return { ...(await b.done), duplicate: true };
      return resultOf(b);
    }
    let prev = e.batches.length > 0 ? e.batches[0].prevSeq : e.subjSeq;
    for (let i = 0; i < MAX_CHAIN_WALK && prev > 0; i++) {
      const m = await this.getMessage({ seq: prev });
      if (!m) break;
      const b = toCached(m.seq, m.data, Number(m.header.get(H_PREV) || 0));
      if (match(b)) return resultOf(b);
      if (inside(b) && !parts.has(b.firstSeq)) parts.set(b.firstSeq, b);
      if (b.lastSeq < firstSeq) break;
      prev = b.prevSeq;
    }
    const offsets: number[] = [];
    let appendTime = 0;
    for (let s = firstSeq; s <= lastSeq;) {
      const b = parts.get(s);
      if (!b) {
        throw new TributaryError('OUT_OF_ORDER_SEQUENCE', `sequences ${firstSeq}..${lastSeq} of ${pid} are at or below the highest appended but not in the log`, { lastSequence: e.lastSeq });
      }
      const r = b.done ? await b.done : resultOf(b);
      for (const o of r.offsets) offsets.push(o);
      appendTime = Math.max(appendTime, r.appendTime);
      s = b.lastSeq + 1;
    }
    if (offsets.length !== count) {
      throw new TributaryError('OUT_OF_ORDER_SEQUENCE', `sequences ${firstSeq}..${lastSeq} of ${pid} were stored as ${offsets.length} records, not ${count}`, { lastSequence: e.lastSeq });
    }
    return { offsets, baseOffset: offsets[0], appendTime, duplicate: true };
  }

  private async getMessage(q: { seq: number } | { last_by_subj: string }): Promise<{ seq: number; data: Uint8Array; header: { get(k: string): string } } | null> {
    try {
      return await this.jsm.streams.getMessage(this.stream, q);
    } catch (err) {
      if (isNoMessage(err)) return null;
      throw err;
    }
  }
}

function toCached(seq: number, data: Uint8Array, prevSeq: number): CachedBatch {
  const r = refOfBatch(seq, data);
  const p = producerOfBatch(data);
  return { firstSeq: p.firstSeq, lastSeq: p.lastSeq, seq, prevSeq, base: r.base, count: r.count, appendTime: r.appendTime, done: null };
}

function resultOf(b: CachedBatch): AppendResult {
  const offsets = new Array<number>(b.count);
  for (let i = 0; i < b.count; i++) offsets[i] = b.base + i;
  return { offsets, baseOffset: b.base, appendTime: b.appendTime, duplicate: true };
}

/** JetStream's "no message found" (10037) and a deleted one both mean: not there. */
export function isNoMessage(err: unknown): boolean {
  const e = err as { code?: string | number; api_error?: { err_code?: number } };
  return e?.api_error?.err_code === 10037 || String(e?.code) === '404' || /no message found/i.test(String(err));
}
