/**
 * Reads of JetStream partitions: an offset becomes a stream sequence
 * (SeqIndex, then a search of the stream by probing messages), and batches
 * come from a pull consumer positioned there. Consumers are kept per
 * position (a reader that served offsets up to N serves the read from N
 * without a new consumer), bounded in number, and fetch only what is known
 * to be stored, so a fetch never waits for its expiry. A reader keeps two
 * fetches under way (the next asked while the current one arrives), so the
 * server is not left idle for a request's round trip between fetches, and
 * holds a bounded number of messages and bytes.
 */
import { AckPolicy, DeliverPolicy, nanos } from 'nats';
import type { Consumer, FetchMessages, JetStreamClient, JetStreamManager, JsMsg } from 'nats';
import { TributaryError } from '../../../protocol/errors.ts';
import type { ReadResult } from '../log-store.ts';
import type { JsPartition } from './js-partition.ts';
import { isNoMessage } from './js-producers.ts';
import { endOfBatch, H_OFFSETS, parseOffsetsHeader, refOfBatch } from './stored-batch.ts';

/** A gap of more index entries than this is searched on the stream before reading. */
const LINEAR_SKIP_MAX = 16;
/** Messages one fetch asks for, at most. */
const MAX_FETCH_MESSAGES = 512;
/**
 * Fetches a reader keeps under way: a fetch's first message comes ~5–20 ms after its request on a busy
 * cluster (measured per fetch), so one fetch at a time left the server idle for that long per 512 messages.
 */
const MAX_FETCHES_IN_FLIGHT = 2;
/** Messages a reader holds or has asked for and not yet received, at most. */
const MAX_AHEAD_MESSAGES = MAX_FETCHES_IN_FLIGHT * MAX_FETCH_MESSAGES;
/** Bytes a reader holds plus those its fetches under way are expected to bring (at the mean size seen), at most. */
const MAX_AHEAD_BYTES = 16 * 1024 * 1024;
/** The message size assumed before a reader has seen one: its first fetch asks for MAX_AHEAD_BYTES / this. */
const FIRST_GUESS_BYTES = 64 * 1024;
/** A fetch smaller than this is not asked while more is stored (it would cost a request for little). */
const MIN_FETCH_MESSAGES = MAX_FETCH_MESSAGES / 4;
/** A reader's consumer is removed by the server after this long unused (a hub that died cannot delete it). */
const CONSUMER_INACTIVE_MS = 5 * 60 * 1000;
/** A fetch asks only for stored messages and returns at once; it waits this long only when its consumer is gone (a node died). */
const FETCH_EXPIRES_MS = 2000;
/** Messages one read by direct gets fetches, at most (a fallback, one round trip each). */
const MAX_DIRECT_MESSAGES = 64;

interface Reader {
  stream: string;
  nextSeq: number;
  consumer: Promise<Consumer>;
  /**
   * Fetched messages not yet read, [head, length): their bodies and stream sequences only. The message
   * objects (headers, reply subject, delivery info) are let go in the fetch's callback, so they die young; a
   * prefetch of up to ~750 whole messages outlived the young generation and was most of a replay's GC.
   */
  data: Uint8Array[];
  seqs: number[];
  head: number;
  /** Bytes of data[head..]. */
  held: number;
  /** Highest stream sequence known to be stored (the last read's): a fetch asks for no more than that. */
  lastSeq: number;
  /** Highest stream sequence asked for by the fetches so far. */
  askedTo: number;
  /** Messages asked for by the fetches under way and not yet received. */
  outstanding: number;
  inFlight: number;
  /** The delivery sequence of the last message received: the consumer numbers its deliveries 1, 2, …, a gap is a message lost. */
  delivered: number;
  /** Messages received and their bytes, for the mean size that bounds what a fetch asks for. */
  seenCount: number;
  seenBytes: number;
  /** Wakes the read waiting for a message or for the end of a fetch. */
  wake: (() => void) | null;
  /** A fetch's error, thrown by the read that finds nothing else to return. */
  error: unknown;
  lastUsed: number;
  /** Its consumer stopped answering: never reused. */
  dead: boolean;
}

export class PartitionReads {
  private readonly readers = new Map<string, Reader>();

  constructor(
    private readonly js: JetStreamClient,
    private readonly jsm: JetStreamManager,
    private readonly maxReaders: number,
  ) {}

  async read(p: JsPartition, offset: number, maxBytes: number): Promise<ReadResult> {
    const hw = p.logEnd;
    if (offset < p.earliest || offset > hw) {
      throw new TributaryError('OFFSET_OUT_OF_RANGE', `offset ${offset} is outside [${p.earliest}, ${hw}] of ${p.topic}/${p.partition}`, { earliest: p.earliest, logEnd: p.offsets().logEnd });
    }
    if (offset === hw) return { bytes: new Uint8Array(0), nextOffset: offset, highWatermark: hw };
    const lastSeq = p.lastSeq;
    const seq = await this.locate(p, offset);
    const first = await this.readFrom(this.take(p.stream, seq), offset, maxBytes, lastSeq);
    // Nothing although the data is stored: the reader's consumer is gone (its node died). Once more, on a new one.
    const res = first ?? (await this.readFrom(this.take(p.stream, seq, true), offset, maxBytes, lastSeq)) ?? (await this.readDirect(p, seq, offset, maxBytes, lastSeq));
    if (!res) return { bytes: new Uint8Array(0), nextOffset: offset, highWatermark: hw };
    return new MessagesRead(res.parts, res.bytes, res.next, Math.max(hw, res.next));
  }

  /** Batches from the reader's position; null when the fetch brought nothing (the reader is then dropped). */
  private async readFrom(r: Reader, offset: number, maxBytes: number, lastSeq: number): Promise<Gathered | null> {
    const out: Uint8Array[] = [];
    let bytes = 0;
    let next = offset;
    if (lastSeq > r.lastSeq) r.lastSeq = lastSeq;
    try {
      while (r.nextSeq <= lastSeq) {
        if (r.head === r.data.length) {
          r.data.length = 0;
          r.seqs.length = 0;
          r.head = 0;
          if (r.inFlight === 0 && r.error !== undefined) throw r.error;
          if (r.dead) break;
          this.pump(r);
          if (r.inFlight === 0) break;
          // Woken by the first message to come (not the fetch's last): the read's work overlaps the arrival.
          await new Promise<void>((resolve) => (r.wake = resolve));
          continue;
        }
        const data = r.data[r.head];
        const end = endOfBatch(data);
        if (end <= offset) {
          r.held -= data.length;
          r.nextSeq = r.seqs[r.head++] + 1;
          continue;
        }
        if (out.length > 0 && bytes + data.length > maxBytes) break;
        r.held -= data.length;
        r.nextSeq = r.seqs[r.head++] + 1;
        out.push(data);
        bytes += data.length;
        next = end;
        if (bytes >= maxBytes) break;
      }
    } catch (err) {
      this.drop(r);
      throw err;
    }
    if (out.length === 0 || r.dead) this.drop(r);
    else {
      this.put(r);
      // Fetch ahead while the caller handles this read.
      this.pump(r);
    }
    if (out.length === 0) return null;
    return { parts: out, bytes, next };
  }

  /**
   * The last resort when two consumers in a row brought nothing although the
   * data is stored (a consumer placed on a node that died, or created slower
   * than a fetch's expiry on a loaded cluster): message by message with direct
   * gets, which any replica answers. An empty answer below the high watermark
   * would end a reader's scan early, so this is worth its round trips.
   */
  private async readDirect(p: JsPartition, seq: number, offset: number, maxBytes: number, lastSeq: number): Promise<Gathered | null> {
    const out: Uint8Array[] = [];
    let bytes = 0;
    let next = offset;
    for (let s = Math.max(seq, p.firstSeq); s <= lastSeq && out.length < MAX_DIRECT_MESSAGES; s++) {
      let data: Uint8Array;
      try {
        data = (await this.jsm.streams.getMessage(p.stream, { seq: s })).data;
      } catch (err) {
        if (isNoMessage(err)) continue; // taken by retention
        throw new TributaryError('STORAGE_UNAVAILABLE', `read of ${p.topic}/${p.partition} failed (${String(err)}); retry it`, { topic: p.topic, partition: p.partition });
      }
      const ref = refOfBatch(s, data);
      if (ref.base + ref.count <= offset) continue;
      if (out.length > 0 && bytes + data.length > maxBytes) break;
      out.push(data);
      bytes += data.length;
      next = ref.base + ref.count;
      if (bytes >= maxBytes) break;
    }
    return out.length === 0 ? null : { parts: out, bytes, next };
  }

  /** The stream sequence of the batch holding `offset`, or of one a few batches below it. */
  private async locate(p: JsPartition, offset: number): Promise<number> {
    for (;;) {
      const { lo, hi } = p.index.around(offset);
      const loSeq = lo ? lo.seq : p.firstSeq;
      const hiSeq = hi ? hi.seq : p.lastSeq + 1;
      if (hiSeq - loSeq <= LINEAR_SKIP_MAX) return Math.max(loSeq, p.firstSeq);
      const mid = loSeq + Math.floor((hiSeq - loSeq) / 2);
      const ref = await this.probe(p, mid);
      if (!ref) return Math.max(loSeq, p.firstSeq);
      p.index.add(ref.seq, ref.base);
    }
  }

  private async probe(p: JsPartition, seq: number): Promise<{ seq: number; base: number; appendTime: number } | null> {
    try {
      const m = await this.jsm.streams.getMessage(p.stream, { seq });
      return parseOffsetsHeader(m.seq, m.header.get(H_OFFSETS)) ?? refOfBatch(m.seq, m.data);
    } catch {
      return null;
    }
  }

  /** The first offset whose append time is >= ts (append times never decrease within a partition). */
  async offsetForTimestamp(p: JsPartition, ts: number): Promise<number> {
    let a = p.firstSeq;
    let b = p.lastSeq;
    let found = -1;
    let foundBase = p.logEnd;
    while (a <= b) {
      const m = a + Math.floor((b - a) / 2);
      const ref = await this.probe(p, m);
      if (!ref) {
        a = m + 1;
        continue;
      }
      p.index.add(ref.seq, ref.base);
      if (ref.appendTime >= ts) {
        found = m;
        foundBase = ref.base;
        b = m - 1;
      } else a = m + 1;
    }
    return found < 0 ? p.logEnd : foundBase;
  }

  private take(stream: string, seq: number, fresh = false): Reader {
    const key = `${stream}\u0000${seq}`;
    const r = fresh ? undefined : this.readers.get(key);
    if (r) {
      this.readers.delete(key);
      return r;
    }
    const consumer = this.createConsumer(stream, seq);
    return {
      stream,
      nextSeq: seq,
      consumer,
      data: [],
      seqs: [],
      head: 0,
      held: 0,
      lastSeq: seq - 1,
      askedTo: seq - 1,
      outstanding: 0,
      inFlight: 0,
      delivered: 0,
      seenCount: 0,
      seenBytes: 0,
      wake: null,
      error: undefined,
      lastUsed: Date.now(),
      dead: false,
    };
  }

  /**
   * An ephemeral pull consumer from `seq`, on the stream leader's node, in memory, without acks (what an
   * ordered consumer creates). Not an ordered consumer: that one allows a single fetch at a time. Its
   * ordering check is the reader's: a gap in the delivery sequence ends the reader.
   */
  private async createConsumer(stream: string, seq: number): Promise<Consumer> {
    const ci = await this.jsm.consumers.add(stream, {
      deliver_policy: DeliverPolicy.StartSequence,
      opt_start_seq: seq,
      ack_policy: AckPolicy.None,
      max_deliver: 1,
      mem_storage: true,
      num_replicas: 1,
      inactive_threshold: nanos(CONSUMER_INACTIVE_MS),
    });
    return this.js.consumers.getPullConsumerFor(ci);
  }

  private put(r: Reader): void {
    r.lastUsed = Date.now();
    const key = `${r.stream}\u0000${r.nextSeq}`;
    const old = this.readers.get(key);
    if (old) this.drop(old);
    this.readers.set(key, r);
    while (this.readers.size > this.maxReaders) {
      const [k, oldest] = this.readers.entries().next().value as [string, Reader];
      this.readers.delete(k);
      this.drop(oldest);
    }
  }

  private drop(r: Reader): void {
    r.dead = true;
    r.consumer.then((c) => c.delete()).catch(() => undefined);
  }

  /**
   * Asks for what is stored after what the reader has asked for, while it has fewer than
   * MAX_FETCHES_IN_FLIGHT fetches under way and room under its bounds.
   */
  private pump(r: Reader): void {
    while (r.inFlight < MAX_FETCHES_IN_FLIGHT && !r.dead && r.error === undefined) {
      const stored = r.lastSeq - r.askedTo;
      const mean = r.seenCount > 0 ? r.seenBytes / r.seenCount : FIRST_GUESS_BYTES;
      const roomMessages = MAX_AHEAD_MESSAGES - (r.data.length - r.head) - r.outstanding;
      const roomBytes = Math.floor((MAX_AHEAD_BYTES - r.held - r.outstanding * mean) / mean);
      const want = Math.min(MAX_FETCH_MESSAGES, stored, roomMessages, roomBytes);
      if (want <= 0 || want < Math.min(MIN_FETCH_MESSAGES, stored)) return;
      r.askedTo += want;
      r.outstanding += want;
      r.inFlight++;
      this.fetchInto(r, want)
        .catch((err: unknown) => {
          // The reader serves what it holds, then is dropped; its read throws this only if it has nothing else.
          r.error ??= err;
          r.dead = true;
        })
        .finally(() => {
          r.inFlight--;
          this.pump(r);
          this.wakeUp(r);
        });
    }
  }

  private wakeUp(r: Reader): void {
    const wake = r.wake;
    if (wake) {
      r.wake = null;
      wake();
    }
  }

  /**
   * One fetch of `want` stored messages into the reader's buffer. A pull lost with its connection, or a
   * consumer on a node that died, may never answer: the reader is then given up (dead) after a deadline,
   * whatever the client library does with the abandoned pull. A fetch that ends short is a consumer gone
   * wrong too (only stored messages are asked for): the reader serves what it holds, then is dropped.
   */
  private async fetchInto(r: Reader, want: number): Promise<void> {
    let stop: (() => void) | null = null;
    let got = 0;
    const work = (async () => {
      const c = await r.consumer;
      // Messages go to a callback, not through the fetch's async iterator (a promise and a microtask turn per
      // message). The pull consumer's fetch takes a callback as its consume does (nats.js 2.29's
      // PullConsumerMessagesImpl; FetchMessages does not type it), and the fetch ends by closing.
      const opts = {
        max_messages: want,
        expires: FETCH_EXPIRES_MS,
        callback: (m: JsMsg) => {
          got++;
          r.outstanding--;
          if (r.dead) return;
          const info = m.info;
          if (info.deliverySequence !== r.delivered + 1) {
            r.dead = true;
            this.wakeUp(r);
            return;
          }
          r.delivered = info.deliverySequence;
          const data = m.data;
          r.data.push(data);
          r.seqs.push(info.streamSequence);
          r.held += data.length;
          r.seenCount++;
          r.seenBytes += data.length;
          this.wakeUp(r);
          if (r.inFlight < MAX_FETCHES_IN_FLIGHT) this.pump(r);
        },
      };
      const iter = await c.fetch(opts as FetchMessages);
      stop = () => iter.stop();
      // Closed with an error is what the iterator would have thrown.
      const err = await iter.closed();
      if (err) throw err;
    })();
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<'late'>((resolve) => (timer = setTimeout(() => resolve('late'), FETCH_EXPIRES_MS + 3000)));
    try {
      const outcome = await Promise.race([work.then(() => 'done' as const), late]);
      if (outcome === 'late') {
        r.dead = true;
        (stop as (() => void) | null)?.();
        work.catch(() => undefined);
      }
    } finally {
      clearTimeout(timer);
      r.outstanding -= want - got;
      if (got < want) r.dead = true;
    }
  }

  /** Forgets the readers of a stream (deleted topic). */
  forget(stream: string): void {
    for (const [k, r] of this.readers) {
      if (r.stream !== stream) continue;
      this.readers.delete(k);
      this.drop(r);
    }
  }

  close(): void {
    for (const r of this.readers.values()) this.drop(r);
    this.readers.clear();
  }
}

/** Messages' batches gathered by a read: their bytes, their total length, and the offset after the last. */
interface Gathered {
  parts: Uint8Array[];
  bytes: number;
  next: number;
}

/**
 * A read's answer over the messages' own buffers (ReadResult.parts): the
 * join into one buffer, a copy of everything read (about a tenth of the
 * engine's CPU per replayed batch), happens only for a reader that asks for
 * `bytes`.
 */
class MessagesRead implements ReadResult {
  private joined: Uint8Array | null = null;

  constructor(
    readonly parts: readonly Uint8Array[],
    private readonly total: number,
    readonly nextOffset: number,
    readonly highWatermark: number,
  ) {}

  get bytes(): Uint8Array {
    return (this.joined ??= concat(this.parts, this.total));
  }
}

function concat(parts: readonly Uint8Array[], total: number): Uint8Array {
  if (parts.length === 1) return parts[0];
  const out = new Uint8Array(total);
  let pos = 0;
  for (const b of parts) {
    out.set(b, pos);
    pos += b.length;
  }
  return out;
}
