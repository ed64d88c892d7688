/**
 * A PostgreSQL sink transaction whose rows go in while its batch is still
 * being read (SinkTask.stream, insert mode).
 *
 * Why: with whole batches, PostgreSQL idled while a batch was read and the
 * sink's process idled while it was COPYed (the first batch waited its
 * linger before any row went in, the last one's COPY ran after every record
 * was read), and every record was kept twice (a copy of its frame, then the
 * COPY text). Here each frame's rows are written as COPY text the moment it
 * arrives, from the frame's bytes, into a log of chunks, and the chunks are
 * sent on an open COPY … FROM STDIN in a transaction of its own; the frame
 * itself is not kept.
 *
 * Exactly once as with SinkTask.prepare: the runner calls commit() after
 * every earlier batch committed; it ends the COPY and moves the connector's
 * offset rows in one UPDATE that matches only when the stored offset of each
 * of the batch's partitions is at or below the batch's first record there
 * (the table holds none of its records), then commits. Otherwise it rolls
 * back and answers null, and the runner calls rewrite(): the put() path
 * (lock the offset rows, skip what is stored, COPY the rest, move the
 * offsets, commit) over the log's rows, which stay until the batch is done.
 */
import { once } from 'node:events';
import type { Writable } from 'node:stream';
import { finished } from 'node:stream/promises';
import type pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import type { CopyWriter } from './postgres-copy-rows.ts';
import type { PartitionOffsets, RecordsView, SinkStream } from './task.ts';

/** Rows are sent on the COPY once this many bytes of them wait: PostgreSQL spent 0.15–0.25 µs/row more on 64 KiB messages. */
const FLUSH_BYTES = 256 * 1024;
/** A chunk of the log is closed (rows never span two) once it holds this many bytes. */
const CHUNK_BYTES = 256 * 1024;
/** Bytes the COPY stream may queue before add() asks the reader to wait. */
const COPY_HIGH_WATER_BYTES = 4 * 1024 * 1024;
const START_RECORDS = 4096;

/** A run of one partition's records in a stream's log (records start … start + count − 1, offset order). */
export class LogPart {
  constructor(
    private readonly log: PostgresStream,
    readonly partition: number,
    readonly start: number,
    public count: number,
  ) {}

  offset(i: number): number {
    return this.log.offsets[this.start + i];
  }
}

/** What the stream needs from its sink. */
export interface StreamDeps {
  pool: pg.Pool;
  copySql: string;
  /** A writer for the stream's rows (given back with release()). */
  writer: CopyWriter;
  release(writer: CopyWriter): void;
  /** The UPDATE that moves the offset rows when each partition's stored offset is at or below its first record here. */
  moveOffsets(client: pg.PoolClient, ranges: Map<number, [first: number, next: number]>): string;
  /** The put() path over these parts and rows (text(firsts): the rows from firsts[k] on of each part). */
  put(parts: readonly LogPart[], text: (firsts: number[]) => Iterable<Buffer>): Promise<PartitionOffsets>;
}

export class PostgresStream implements SinkStream {
  count = 0;
  readonly parts: LogPart[] = [];
  /** Per record of the log: its offset, its chunk, where its row ends in the chunk. */
  offsets = new Float64Array(START_RECORDS);
  private chunkOf = new Int32Array(START_RECORDS);
  private rowEnd = new Int32Array(START_RECORDS);
  private readonly chunks: Buffer[] = [];
  private writer: CopyWriter | null;
  private client: pg.PoolClient | null = null;
  private copy: Writable | null = null;
  /** Rows written before the COPY started: sent when it does. */
  private pending: Buffer[] = [];
  /** The connection, BEGIN or the COPY failed: rows are still logged (for rewrite()), no longer sent. */
  private failure: Error | null = null;
  private readonly started: Promise<void>;
  private done = false;
  private readonly onError = (err: Error): void => void (this.failure ??= err);

  constructor(private readonly deps: StreamDeps) {
    this.writer = deps.writer;
    this.writer.reset();
    this.started = this.begin();
    this.started.catch((err: unknown) => void (this.failure ??= err as Error));
  }

  private async begin(): Promise<void> {
    const client = await this.deps.pool.connect();
    if (this.done) return client.release(); // aborted meanwhile
    this.client = client;
    client.on('error', this.onError);
    await client.query('BEGIN');
    if (this.done) return;
    const copy = client.query(copyFrom(this.deps.copySql, { highWaterMark: COPY_HIGH_WATER_BYTES }));
    copy.on('error', this.onError);
    this.copy = copy;
    for (const b of this.pending) copy.write(b);
    this.pending = [];
  }

  /** Records [from, to) of `view` (one partition, offset order): their rows logged now, sent soon. A promise: wait before more. */
  add(view: RecordsView, from: number, to: number): Promise<void> | undefined {
    const w = this.writer!;
    let n = this.count;
    const need = n + to - from;
    if (need > this.offsets.length) this.grow(need);
    const offsets = this.offsets;
    const chunkOf = this.chunkOf;
    const rowEnd = this.rowEnd;
    for (let i = from; i < to; i++) {
      w.row(view, i, false);
      offsets[n] = view.offset(i);
      chunkOf[n] = this.chunks.length;
      rowEnd[n] = w.length;
      n++;
      if (w.length >= CHUNK_BYTES) this.cut();
    }
    const last = this.parts.at(-1);
    if (last && last.partition === view.partition) last.count += to - from;
    else this.parts.push(new LogPart(this, view.partition, this.count, to - from));
    this.count = n;
    if (w.unsentLength >= FLUSH_BYTES) this.send(w.unsent());
    const copy = this.copy;
    return copy && copy.writableNeedDrain && !this.failure ? once(copy, 'drain').then(noop, noop) : undefined;
  }

  /** Sends what waits and closes the log's chunk. */
  private cut(): void {
    const w = this.writer!;
    this.send(w.unsent());
    if (w.length) this.chunks.push(w.take());
  }

  private send(b: Buffer): void {
    if (b.length === 0 || this.failure) return;
    if (this.copy) this.copy.write(b);
    else this.pending.push(b);
  }

  /** The last rows sent and logged; the writer goes back to the sink. */
  private seal(): void {
    if (!this.writer) return;
    this.cut();
    this.deps.release(this.writer);
    this.writer = null;
  }

  private ranges(): Map<number, [first: number, next: number]> {
    const ranges = new Map<number, [number, number]>();
    for (const part of this.parts) {
      const next = part.offset(part.count - 1) + 1;
      const r = ranges.get(part.partition);
      if (r) r[1] = next;
      else ranges.set(part.partition, [part.offset(0), next]);
    }
    return ranges;
  }

  async commit(): Promise<PartitionOffsets | null> {
    this.seal();
    try {
      await this.started;
      const copy = this.copy!;
      copy.end();
      await finished(copy);
      if (this.failure) throw this.failure;
      const client = this.client!;
      const ranges = this.ranges();
      const moved = await client.query(this.deps.moveOffsets(client, ranges));
      if (moved.rowCount !== ranges.size) {
        await this.end('ROLLBACK');
        return null;
      }
      await this.end('COMMIT');
      return new Map([...ranges].map(([p, [, next]]) => [p, next]));
    } catch (err) {
      this.close(true);
      throw err;
    }
  }

  /** The rows written again by the put() path (after a commit that answered null or failed). */
  rewrite(): Promise<PartitionOffsets> {
    this.seal();
    this.close(true);
    return this.deps.put(this.parts, (firsts) => this.text(firsts));
  }

  /** Rolls back (the connection is dropped: the server ends the transaction and the COPY with it). */
  async abort(): Promise<void> {
    this.seal();
    await this.started.catch(noop);
    this.close(true);
  }

  private async end(sql: string): Promise<void> {
    try {
      await this.client!.query(sql);
    } catch (err) {
      this.close(true);
      throw err;
    }
    this.close(this.failure !== null);
  }

  /** Gives the connection back (broken: closed) once; a later call does nothing. */
  private close(broken: boolean): void {
    if (this.done && !this.client) return;
    this.done = true;
    const client = this.client;
    this.client = null;
    if (!client) return;
    this.copy?.off('error', this.onError);
    this.copy?.on('error', noop);
    client.off('error', this.onError);
    client.release(broken);
  }

  /** The logged rows from firsts[k] on of each part, as views of the chunks. */
  private *text(firsts: number[]): Generator<Buffer> {
    const { chunkOf, rowEnd, chunks } = this;
    for (let k = 0; k < this.parts.length; k++) {
      const part = this.parts[k];
      const end = part.start + part.count;
      let j = part.start + firsts[k];
      while (j < end) {
        const c = chunkOf[j];
        const s = j > 0 && chunkOf[j - 1] === c ? rowEnd[j - 1] : 0;
        let e = j + 1;
        while (e < end && chunkOf[e] === c) e++;
        yield chunks[c].subarray(s, rowEnd[e - 1]);
        j = e;
      }
    }
  }

  private grow(n: number): void {
    const cap = Math.max(n, this.offsets.length * 2);
    const offsets = new Float64Array(cap);
    offsets.set(this.offsets.subarray(0, this.count));
    const chunkOf = new Int32Array(cap);
    chunkOf.set(this.chunkOf.subarray(0, this.count));
    const rowEnd = new Int32Array(cap);
    rowEnd.set(this.rowEnd.subarray(0, this.count));
    this.offsets = offsets;
    this.chunkOf = chunkOf;
    this.rowEnd = rowEnd;
  }
}

function noop(): void {}
