/**
 * Reads of JetStream partitions: an offset becomes a stream sequence
 * (SeqIndex, then a search of the stream by probing messages), and batches
 * come from an ordered pull consumer positioned there. Consumers are kept
 * per position (a reader that served offsets up to N serves the read from N
 * without a new consumer), bounded in number, and fetch only what is known
 * to be stored, so a fetch never waits for its expiry.
 */
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
  /** The fetch under way (the one a read waits for, or the next one fetched ahead), null when none. */
  filling: Promise<void> | null;
  /** Highest stream sequence fetched or asked for by the fetch under way. */
  fetchedTo: number;
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
    try {
      while (r.nextSeq <= lastSeq) {
        if (r.head === r.data.length) {
          r.data.length = 0;
          r.seqs.length = 0;
          r.head = 0;
          if (r.dead) break;
          await (r.filling ?? this.fill(r, lastSeq));
          if (r.data.length === 0) break;
        }
        const data = r.data[r.head];
        const end = endOfBatch(data);
        if (end <= offset) {
          r.nextSeq = r.seqs[r.head++] + 1;
          continue;
        }
        if (out.length > 0 && bytes + data.length > maxBytes) break;
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
      // Fetch ahead while the caller handles this read, as an ordered consumer's pulls overlap: a read that
      // found its buffer empty would wait a round trip and the server's send of a whole fetch.
      if (!r.filling && r.data.length - r.head < MAX_FETCH_MESSAGES / 2 && r.fetchedTo < lastSeq) this.fill(r, lastSeq).catch(() => undefined);
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
    return { stream, nextSeq: seq, consumer: this.js.consumers.get(stream, { opt_start_seq: seq }), data: [], seqs: [], head: 0, filling: null, fetchedTo: seq - 1, lastUsed: Date.now(), dead: false };
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
    r.consumer.then((c) => c.delete()).catch(() => undefined);
  }

  /**
   * Fetches what is stored after the reader's position. A pull lost with its
   * connection, or a consumer on a node that died, may never answer: the
   * reader is then given up (dead) after a deadline, whatever the client
   * library does with the abandoned pull.
   */
  private fill(r: Reader, lastSeq: number): Promise<void> {
    const want = Math.min(MAX_FETCH_MESSAGES, lastSeq - Math.max(r.fetchedTo, r.nextSeq - 1));
    if (want <= 0) return Promise.resolve();
    const p = this.fetchInto(r, want).finally(() => {
      if (r.filling === p) r.filling = null;
    });
    r.filling = p;
    return p;
  }

  private async fetchInto(r: Reader, want: number): Promise<void> {
    let stop: (() => void) | null = null;
    const work = (async () => {
      const c = await r.consumer;
      // Messages go to a callback, not through the fetch's async iterator (a promise and a microtask turn per
      // message). The ordered consumer's fetch takes a callback as its consume does (nats.js 2.29's
      // OrderedPullConsumerImpl; FetchMessages does not type it), and the fetch ends by closing.
      const opts = {
        max_messages: want,
        expires: FETCH_EXPIRES_MS,
        callback: (m: JsMsg) => {
          if (r.dead) return;
          const seq = m.seq;
          r.data.push(m.data);
          r.seqs.push(seq);
          r.fetchedTo = seq;
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
