/**
 * One partition on JetStream: its stream's tail as this hub knows it, the
 * pipelined writer, and the watch that learns of other hubs' appends.
 *
 * Offsets are stamped by the hub before publishing, so an append must land
 * exactly after the batch whose end it was computed from. Every publish
 * carries the expected last stream sequence AND the expected last message
 * id (the previous batch's id): pipelined publishes from one hub chain on
 * each other, and a batch from another hub in between breaks the chain, so
 * the rest fail rather than land at the wrong offsets. On any failure the
 * writer stops sending, lets what is in flight settle, re-reads the tail
 * from the stream and sends the failed batches again, re-stamped, in their
 * order. A publish whose reply was lost is answered by JetStream's duplicate
 * detection (same message id) with where it landed.
 *
 * An ack from JetStream means stored on a majority of the stream's
 * replicas, so the high watermark is the end of the last acked batch.
 */
import type { JetStreamClient, JetStreamManager } from 'nats';
import { checkBatch, readLastOffsetDelta, readRecordCount, readUint32, BATCH_HEADER_BYTES, LENGTH_FIELD_END } from '../../../protocol/batch.ts';
import type { Crc32c } from '../../../protocol/crc32c.ts';
import { TributaryError } from '../../../protocol/errors.ts';
import type { AppendResult, PartitionOffsets } from '../log-store.ts';
import { publishHeaders, type AckSink, type AckedPublisher } from './acked-publisher.ts';
import { JsProducerTable, isNoMessage, type CachedBatch, type ProducerEntry } from './js-producers.ts';
import { plainSubject, producerMsgId, producerSubject, streamName } from './names.ts';
import { SeqIndex } from './seq-index.ts';
import { stampVerified } from './stamp.ts';
import { H_OFFSETS, H_PREV, offsetsHeader, producerOfBatch, refOfBatch, type BatchRef } from './stored-batch.ts';

export interface JsEnv {
  js: JetStreamClient;
  jsm: JetStreamManager;
  /** Appends: publishes awaiting their PubAck (acked-publisher.ts). */
  publisher: AckedPublisher;
  crc: Crc32c;
  now: () => number;
  /** Unique per hub process: the message ids of batches without a producer. */
  hubId: string;
  maxInFlight: number;
  maxProducersPerPartition: number;
  /** An append not stored within this is refused (STORAGE_UNAVAILABLE; it may or may not be in the log). */
  appendTimeoutMs: number;
  log: { info(obj: object, msg?: string): void; warn(obj: object, msg?: string): void; error(obj: object, msg?: string): void };
  notifyDurable: (topic: string, partition: number, hw: number) => void;
}

interface Pending {
  batch: Uint8Array;
  count: number;
  pid: string;
  firstSeq: number;
  lastSeq: number;
  msgId: string;
  deadline: number;
  cached: CachedBatch | null;
  entry: ProducerEntry | null;
  // set when sent
  seq: number;
  base: number;
  appendTime: number;
  state: 'queued' | 'sent' | 'acked' | 'failed';
  /** Where JetStream says the message is when it differs from where it was sent (a duplicate of an earlier publish). */
  storedAt: number;
  error: unknown;
  /** Sent at least once: a re-send stamps a copy (see send()). */
  sent: boolean;
  resolve: (r: AppendResult) => void;
  reject: (e: Error) => void;
}

/**
 * One publish waits this long for its ack. A request lost with a connection
 * (its server died) is never answered: it is sent again after a tail re-read,
 * with the same message id, so a copy that did land is not stored twice.
 */
const PUBLISH_TIMEOUT_MS = 4000;
const RESYNC_MIN_MS = 50;
const RESYNC_MAX_MS = 2000;

export class JsPartition implements AckSink<Pending> {
  readonly stream: string;
  readonly index = new SeqIndex();
  readonly producers: JsProducerTable;
  /** Confirmed tail: the last stored message and the end of its batch (the high watermark). */
  lastSeq = 0;
  logEnd = 0;
  firstSeq = 1;
  earliest = 0;
  bytes = 0;
  private lastMsgId = '';
  private lastAppendTime = 0;
  // The writer's view, ahead of the confirmed tail by what is in flight.
  private nextSeq = 1;
  private nextOffset = 0;
  private nextMsgId = '';
  private queue: Pending[] = [];
  private inflight: Pending[] = [];
  private broken = false;
  private resyncing = false;
  private resyncDelayMs = RESYNC_MIN_MS;
  private gate: Promise<unknown> = Promise.resolve();
  private msgCounter = 0;
  private readonly subject: string;
  closed = false;
  /** The watch for other hubs' appends, while this hub has readers of the partition. */
  watch: { iter: { stop(): void } | null; stopped: boolean } | null = null;

  constructor(
    readonly topic: string,
    readonly partition: number,
    private readonly env: JsEnv,
    /** The stream read (a mirror's in a second region); appends always go to the topic's own subjects. */
    stream?: string,
  ) {
    this.stream = stream ?? streamName(topic, partition);
    this.subject = plainSubject(topic, partition);
    this.producers = new JsProducerTable(env.jsm, this.stream, (pid) => producerSubject(topic, partition, pid), env.maxProducersPerPartition);
  }

  offsets(): PartitionOffsets {
    return { earliest: this.earliest, highWatermark: this.logEnd, logEnd: Math.max(this.logEnd, this.nextOffset), bytes: this.bytes };
  }

  /** Reads the stream's first and last batches (start-up, and after a failed append). */
  async refreshTail(): Promise<void> {
    const info = await this.env.jsm.streams.info(this.stream);
    const st = info.state;
    this.bytes = st.bytes;
    // Info read before appends this hub has seen since says nothing new about the tail.
    if (st.last_seq < this.lastSeq) return;
    if (st.messages === 0 || st.last_seq === 0) {
      // Empty, possibly after retention took everything: the next batch starts where the last one
      // ended, as far as this hub knows (a hub started on an emptied stream starts again at 0).
      this.firstSeq = st.first_seq;
      this.earliest = this.logEnd;
      this.index.dropBelow(st.first_seq);
      this.noteTail(st.last_seq, this.logEnd, this.lastSeq === st.last_seq ? this.lastMsgId : '', this.lastAppendTime);
      return;
    }
    if (st.first_seq !== this.firstSeq || this.index.size === 0) {
      const first = await this.env.jsm.streams.getMessage(this.stream, { seq: st.first_seq });
      const r = refOfBatch(first.seq, first.data);
      this.firstSeq = first.seq;
      this.earliest = r.base;
      this.index.dropBelow(first.seq);
      this.index.add(first.seq, r.base);
    }
    if (st.last_seq !== this.lastSeq) {
      const last = await this.env.jsm.streams.getMessage(this.stream, { seq: st.last_seq });
      const r = refOfBatch(last.seq, last.data);
      this.index.add(last.seq, r.base);
      this.noteTail(last.seq, r.base + r.count, last.header.get('Nats-Msg-Id') ?? '', r.appendTime);
    }
  }

  private noteTail(seq: number, end: number, msgId: string, appendTime: number): void {
    const moved = end > this.logEnd;
    if (seq > this.lastSeq) {
      this.lastSeq = seq;
      this.logEnd = Math.max(this.logEnd, end);
      this.lastMsgId = msgId;
    }
    if (appendTime > this.lastAppendTime) this.lastAppendTime = appendTime;
    if (this.inflight.length === 0 && !this.resyncing) {
      // Nothing of ours in flight: the next append follows whatever is last now, ours or another hub's.
      this.nextSeq = this.lastSeq + 1;
      this.nextOffset = this.logEnd;
      this.nextMsgId = this.lastMsgId;
    }
    if (moved) this.env.notifyDurable(this.topic, this.partition, this.logEnd);
  }

  /** A message seen by the watch (this hub's own or another's). */
  observe(ref: BatchRef, msgId: string, size: number): void {
    if (ref.seq <= this.lastSeq) return;
    this.index.add(ref.seq, ref.base);
    if (ref.seq !== this.lastSeq + 1) {
      // Something between was missed (the watch restarted): the index has a hole that reads search.
      this.env.log.warn({ stream: this.stream, seq: ref.seq, last: this.lastSeq }, 'watch skipped messages');
    }
    this.bytes += size;
    this.noteTail(ref.seq, ref.base + ref.count, msgId, ref.appendTime);
  }

  // ---------------- append ----------------

  append(b: Uint8Array): Promise<AppendResult> {
    if (this.closed) return Promise.reject(new TributaryError('SHUTTING_DOWN', `partition ${this.topic}/${this.partition} is closed`));
    const fault = b.length < BATCH_HEADER_BYTES ? 'truncated' : checkBatch(b, 0, b.length, this.env.crc, false);
    if (fault) return Promise.reject(new TributaryError(fault === 'bad-crc' ? 'CORRUPT_BATCH' : 'BAD_BATCH', `record batch is ${fault}`));
    if (LENGTH_FIELD_END + readUint32(b, 8) !== b.length) return Promise.reject(new TributaryError('BAD_BATCH', 'buffer holds more than one batch'));
    const count = readRecordCount(b);
    if (count === 0 || readLastOffsetDelta(b) !== count - 1) return Promise.reject(new TributaryError('BAD_BATCH', 'a produced batch needs dense offset deltas 0..count-1'));
    const prod = producerOfBatch(b);
    if (prod.firstSeq < -1) return Promise.reject(new TributaryError('BAD_SEQUENCE', 'negative base sequence'));
    return new Promise<AppendResult>((resolve, reject) => {
      const p: Pending = {
        batch: b,
        count,
        pid: prod.pid,
        firstSeq: prod.firstSeq,
        lastSeq: prod.lastSeq,
        msgId: prod.pid ? producerMsgId(prod.pid, prod.firstSeq, prod.lastSeq) : `${this.env.hubId}:${++this.msgCounter}`,
        deadline: Date.now() + this.env.appendTimeoutMs,
        cached: null,
        entry: null,
        seq: 0,
        base: 0,
        appendTime: 0,
        state: 'queued',
        storedAt: 0,
        error: null,
        sent: false,
        resolve,
        reject,
      };
      if (!p.pid && !this.resyncing) return this.enqueue(p);
      // Producer checks run in arrival order (a producer's next batch may not overtake its previous one).
      this.gate = this.gate.then(() => this.admit(p)).catch((err) => reject(err as Error));
    });
  }

  /** Decides a producer's batch against its state: duplicate, overlap, or to be appended. */
  private async admit(p: Pending): Promise<void> {
    if (!p.pid) return this.enqueue(p);
    const got = this.producers.get(p.pid);
    const loaded = got instanceof Promise;
    const e = loaded ? await got : got;
    if (p.lastSeq <= e.lastSeq) {
      this.producers.findDuplicate(p.pid, e, p.firstSeq, p.lastSeq, p.count).then(p.resolve, p.reject);
      return;
    }
    if (p.firstSeq <= e.lastSeq && loaded) {
      // The caller split retries on lastSequence(), which knew nothing of this producer until now (a hub
      // started after the producer's last append, e.g. replacing one that was killed): retriable, and the
      // retry is split right, instead of a BAD_SEQUENCE that would drop the producer's events for good.
      throw new TributaryError('STORAGE_UNAVAILABLE', `producer state of ${this.topic}/${this.partition} was just read from the stream (highest appended ${e.lastSeq}); retry the request`, {
        lastSequence: e.lastSeq,
      });
    }
    if (p.firstSeq <= e.lastSeq) {
      throw new TributaryError('BAD_SEQUENCE', `batch sequences ${p.firstSeq}..${p.lastSeq} overlap the highest appended ${e.lastSeq}; split the batch`, { lastSequence: e.lastSeq });
    }
    const cached: CachedBatch = { firstSeq: p.firstSeq, lastSeq: p.lastSeq, seq: 0, prevSeq: 0, base: 0, count: p.count, appendTime: 0, done: null };
    cached.done = new Promise<AppendResult>((resolve, reject) => {
      const { resolve: r0, reject: j0 } = p;
      p.resolve = (r) => (r0(r), resolve(r));
      p.reject = (err) => (j0(err), reject(err));
    });
    cached.done.catch(() => undefined);
    this.producers.add(e, cached);
    p.cached = cached;
    p.entry = e;
    this.enqueue(p);
  }

  lastSequence(pid: string): number {
    return this.producers.cached(pid)?.lastSeq ?? -1;
  }

  private enqueue(p: Pending): void {
    this.queue.push(p);
    this.pump();
  }

  private pump(): void {
    while (!this.resyncing && !this.broken && this.queue.length > 0 && this.inflight.length < this.env.maxInFlight) this.send(this.queue.shift()!);
  }

  private send(p: Pending): void {
    const seq = this.nextSeq;
    const base = this.nextOffset;
    const now = this.env.now();
    const appendTime = now > this.lastAppendTime ? now : this.lastAppendTime;
    this.lastAppendTime = appendTime;
    // The nats client keeps a publish's bytes by reference while it is disconnected and may still flush
    // the earlier publish later: re-stamping the same array would send that old publish with the new
    // offsets (right offsets, wrong batch in the log). A re-send stamps a copy.
    if (p.sent) p.batch = p.batch.slice();
    p.sent = true;
    // The batch's CRC is right for its bytes: append() checked it, or the last send stamped it.
    stampVerified(p.batch, base, appendTime);
    p.seq = seq;
    p.base = base;
    p.appendTime = appendTime;
    p.state = 'sent';
    let subject = this.subject;
    let own = `${H_OFFSETS}: ${offsetsHeader(base, p.count, appendTime)}\r\n`;
    let lastSubjectSequence = -1;
    if (p.entry) {
      subject = producerSubject(this.topic, this.partition, p.pid);
      lastSubjectSequence = p.entry.predSubjSeq;
      own += `${H_PREV}: ${p.entry.predSubjSeq}\r\n`;
      p.cached!.prevSeq = p.entry.predSubjSeq;
      p.entry.predSubjSeq = seq;
    }
    const headers = publishHeaders(p.msgId, seq - 1, this.nextMsgId, lastSubjectSequence, own);
    this.nextSeq = seq + 1;
    this.nextOffset = base + p.count;
    this.nextMsgId = p.msgId;
    this.inflight.push(p);
    this.env.publisher.publish(subject, p.batch, headers, PUBLISH_TIMEOUT_MS, this, p);
  }

  onAck(p: Pending, seq: number): void {
    if (seq !== p.seq) {
      // A duplicate of an earlier publish of this message (its reply was lost): it is stored elsewhere.
      p.storedAt = seq;
      p.state = 'failed';
      this.broken = true;
    } else p.state = 'acked';
    this.settle();
  }

  onFail(p: Pending, err: unknown): void {
    p.state = 'failed';
    p.error = err;
    if (!isConflict(err)) this.env.log.warn({ stream: this.stream, err: String(err) }, 'append failed; re-reading the tail');
    this.broken = true;
    this.settle();
  }

  private settle(): void {
    let moved = false;
    while (this.inflight.length > 0 && this.inflight[0].state === 'acked' && !this.broken) {
      const p = this.inflight.shift()!;
      this.commit(p);
      moved = true;
    }
    if (this.broken) {
      // Keep acked ones that precede the first failure.
      while (this.inflight.length > 0 && this.inflight[0].state === 'acked') {
        this.commit(this.inflight.shift()!);
        moved = true;
      }
      if (!this.resyncing && this.inflight.every((p) => p.state === 'acked' || p.state === 'failed')) {
        const failed = this.inflight;
        this.inflight = [];
        this.resyncing = true;
        this.gate = this.gate.then(() => this.resync(failed));
      }
    } else this.pump();
    if (moved) this.env.notifyDurable(this.topic, this.partition, this.logEnd);
  }

  private commit(p: Pending): void {
    this.index.add(p.seq, p.base);
    this.lastSeq = p.seq;
    this.logEnd = p.base + p.count;
    this.lastMsgId = p.msgId;
    this.bytes += p.batch.length;
    if (p.cached && p.entry) {
      p.cached.seq = p.seq;
      p.cached.base = p.base;
      p.cached.appendTime = p.appendTime;
      if (p.seq > p.entry.subjSeq) p.entry.subjSeq = p.seq;
    }
    p.resolve(resultOf(p.base, p.count, p.appendTime, false));
  }

  /** After a failure: re-read the tail, answer what landed, send the rest again in order. */
  private async resync(failed: Pending[]): Promise<void> {
    for (;;) {
      if (this.closed) {
        const e = new TributaryError('SHUTTING_DOWN', 'the log is closing');
        for (const p of [...failed, ...this.queue]) p.reject(e);
        this.queue = [];
        return;
      }
      try {
        await this.refreshTail();
        const again: Pending[] = [];
        // One lookup per producer for the pass: its batches sent again share one entry, so each names the
        // one before it (H_PREV). An entry per batch had each name the stored tail, and a fresh hub's
        // duplicate walk down that chain skipped the batches between (OUT_OF_ORDER_SEQUENCE for a retry).
        const looked = new Map<string, { e: ProducerEntry; stored: number }>();
        for (const p of failed) {
          if (p.storedAt > 0) {
            const m = await this.env.jsm.streams.getMessage(this.stream, { seq: p.storedAt });
            const r = refOfBatch(m.seq, m.data);
            if (p.cached) Object.assign(p.cached, { seq: m.seq, base: r.base, appendTime: r.appendTime });
            // Stored by an earlier publish of the same message id: ours (a lost reply) or, for a producer's batch, another hub's.
            p.resolve(resultOf(r.base, r.count, r.appendTime, p.pid !== ''));
            continue;
          }
          if (Date.now() > p.deadline) {
            p.reject(
              new TributaryError('STORAGE_UNAVAILABLE', `append to ${this.topic}/${this.partition} not confirmed in time (${String(p.error)}); retry it`, {
                topic: this.topic,
                partition: this.partition,
              }),
            );
            if (p.pid) this.producers.forget(p.pid);
            continue;
          }
          if (p.pid) {
            // Did it land after all (a lost reply), or did another hub append this producer meanwhile?
            let l = looked.get(p.pid);
            if (!l) {
              this.producers.forget(p.pid);
              const e = await this.producers.lookup(p.pid);
              looked.set(p.pid, (l = { e, stored: e.lastSeq }));
            }
            if (l.stored >= p.lastSeq) {
              this.producers.findDuplicate(p.pid, l.e, p.firstSeq, p.lastSeq, p.count).then(p.resolve, p.reject);
              continue;
            }
            this.producers.add(l.e, p.cached!);
            p.entry = l.e;
          }
          p.state = 'queued';
          again.push(p);
        }
        // Queued producer batches were admitted against entries the lookups replaced: re-attach them.
        for (const p of this.queue) {
          if (!p.pid) continue;
          const e = this.producers.cached(p.pid);
          if (e && e !== p.entry) {
            this.producers.add(e, p.cached!);
            p.entry = e;
          }
        }
        this.queue = again.concat(this.queue);
        this.nextSeq = this.lastSeq + 1;
        this.nextOffset = this.logEnd;
        this.nextMsgId = this.lastMsgId;
        for (const p of this.queue) if (p.entry) p.entry.predSubjSeq = p.entry.subjSeq;
        this.broken = false;
        this.resyncing = false;
        this.resyncDelayMs = RESYNC_MIN_MS;
        this.pump();
        return;
      } catch (err) {
        this.env.log.warn({ stream: this.stream, err: String(err) }, 'tail re-read failed; retrying');
        await new Promise((r) => setTimeout(r, this.resyncDelayMs));
        this.resyncDelayMs = Math.min(this.resyncDelayMs * 2, RESYNC_MAX_MS);
      }
    }
  }

  /** Waits for the writer to go idle (bounded), then refuses further work. */
  async close(timeoutMs = 5000): Promise<void> {
    const until = Date.now() + timeoutMs;
    while ((this.inflight.length > 0 || this.queue.length > 0 || this.resyncing) && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
    this.closed = true;
  }
}

function resultOf(base: number, count: number, appendTime: number, duplicate: boolean): AppendResult {
  const offsets = new Array<number>(count);
  for (let i = 0; i < count; i++) offsets[i] = base + i;
  return { offsets, baseOffset: base, appendTime, duplicate };
}

/** "wrong last sequence" (10071) / "wrong last msg ID" (10070): another writer got there first. */
function isConflict(err: unknown): boolean {
  const code = (err as { api_error?: { err_code?: number } })?.api_error?.err_code;
  return code === 10070 || code === 10071 || /wrong last/i.test(String(err));
}

export { isNoMessage };
