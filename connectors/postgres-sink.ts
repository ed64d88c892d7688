/**
 * PostgreSQL sink: writes records into a table, plain INSERT or upsert by
 * key, with a column mapping; exactly once.
 *
 * Exactly once because the consumed offsets live in the same database, in
 * the offsets table, and are updated in the same transaction as the rows:
 * either both the rows and the new offset commit, or neither. The
 * transaction first locks the connector's offset rows (SELECT … FOR UPDATE)
 * and drops records below them, so a batch re-delivered after a crash, or
 * written by a second instance that did not know better, inserts nothing
 * twice. At start the sink resumes from these offsets, not the hub's.
 *
 * Rows go in with COPY … FROM STDIN inside that transaction (COPY is the
 * fastest way into PostgreSQL, several times a multi-row INSERT). An upsert
 * COPYs into a temporary staging table of the mapped columns and then runs
 * one INSERT … SELECT … ON CONFLICT DO UPDATE from it.
 *
 * Column mapping: `columns: { column: source }` where source is `key`,
 * `value` (the whole value), `value.a.b` (a field of a JSON value),
 * `offset`, `partition`, `timestamp`, `topic` or `header.NAME`
 * (postgres-copy-rows.ts turns them into COPY fields). Without `columns`,
 * each column of the table takes `value.<column>`.
 */
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { configError, type Settings } from './config.ts';
import { copyColumn, CopyWriter, writesRawJson, type CopyColumn } from './postgres-copy-rows.ts';
import { createPool, primaryKey, quoteIdent, quoteName, tableColumns, type TableColumn } from './postgres-common.ts';
import { PostgresStream } from './postgres-stream.ts';
import type { PartitionOffsets, PreparedWrite, RecordsView, SinkStream, SinkTask } from './task.ts';
import type { Log } from './worker.ts';

export interface PostgresSinkOptions {
  connector: string;
  topic: string;
  connection: string;
  table: string;
  mode: 'insert' | 'upsert';
  /** Conflict columns for upsert (default: the table's primary key). */
  key: string[] | undefined;
  columns: Record<string, string> | undefined;
  offsetsTable: string;
}

export function postgresSinkOptions(connector: string, topic: string, s: Settings): PostgresSinkOptions {
  const columns = s.map('columns');
  if (columns) for (const [c, src] of Object.entries(columns)) if (typeof src !== 'string') throw configError(`connector ${connector}: columns.${c} must be a source like key, value.field, offset`);
  const mode = s.oneOf('mode', ['insert', 'upsert'] as const, 'insert');
  return {
    connector,
    topic,
    connection: s.string('connection'),
    table: s.string('table'),
    mode,
    key: s.has('key') ? s.stringList('key') : undefined,
    columns: columns as Record<string, string> | undefined,
    offsetsTable: s.string('offsetsTable', 'tributary_sink_offsets'),
  };
}

const STAGE = 'tributary_sink_stage';

/** A batch being prepared while the one before commits, and a spare for a retry while a broken one is torn down. */
const POOL_CONNECTIONS = 3;

/** Bytes of COPY text per chunk handed to the stream. */
const COPY_CHUNK_BYTES = 256 * 1024;

/** Records of one partition in offset order, as a batch's frame or a stream's run of them. */
interface OffsetRun {
  readonly partition: number;
  readonly count: number;
  offset(i: number): number;
}

interface Mapped {
  column: TableColumn;
  copy: CopyColumn;
}

export class PostgresSink implements SinkTask {
  private pool: pg.Pool | null = null;
  private mapped: Mapped[] = [];
  private copySql = '';
  private stageSql = '';
  private upsertSql = '';
  /** Pooled connections whose session has the staging table. */
  private readonly staged = new WeakSet<pg.PoolClient>();
  private keyIndexes: number[] = [];
  /** Write the COPY rows, one per write in progress (a prepared batch's and a put's may run at once). */
  private readonly writers: CopyWriter[] = [];
  private copyColumns: CopyColumn[] = [];
  /** Writes the upsert key columns (made at start). */
  private keyWriter: CopyWriter | null = null;

  constructor(
    private readonly o: PostgresSinkOptions,
    private readonly log: Log,
  ) {}

  async start(): Promise<void> {
    this.pool ??= createPool(this.o.connection, this.o.connector, this.log, POOL_CONNECTIONS);
    const pool = this.pool;
    await pool.query(
      `CREATE TABLE IF NOT EXISTS ${quoteName(this.o.offsetsTable)} (
         connector text NOT NULL, topic text NOT NULL, partition integer NOT NULL, next_offset bigint,
         PRIMARY KEY (connector, topic, partition))`,
    );
    const cols = await tableColumns(pool, this.o.table);
    if (cols.length === 0) throw configError(`connector ${this.o.connector}: table ${this.o.table} has no columns`);
    const byName = new Map(cols.map((c) => [c.name, c]));
    const mapping = this.o.columns ?? Object.fromEntries(cols.map((c) => [c.name, `value.${c.name}`]));
    this.mapped = Object.entries(mapping).map(([name, src]) => {
      const column = byName.get(name);
      if (!column) throw configError(`connector ${this.o.connector}: table ${this.o.table} has no column ${JSON.stringify(name)}`);
      return { column, copy: copyColumn(src, column.type, this.o.connector) };
    });
    const names = this.mapped.map((m) => quoteIdent(m.column.name)).join(', ');
    this.copyColumns = this.mapped.map((m) => m.copy);
    this.writers.length = 0;
    if (this.o.mode === 'insert') {
      this.copySql = `COPY ${quoteName(this.o.table)} (${names}) FROM STDIN`;
    } else {
      // Per session (the pool's connections), emptied at each commit.
      this.stageSql = `CREATE TEMP TABLE IF NOT EXISTS ${STAGE} ON COMMIT DELETE ROWS AS SELECT ${names} FROM ${quoteName(this.o.table)} WITH NO DATA`;
      this.copySql = `COPY ${STAGE} (${names}) FROM STDIN`;
      let sql = `INSERT INTO ${quoteName(this.o.table)} (${names}) SELECT ${names} FROM ${STAGE}`;
      const keyCols = this.o.key ?? (await primaryKey(pool, this.o.table));
      if (keyCols.length === 0) throw configError(`connector ${this.o.connector}: upsert needs \`key\` (the table has no primary key)`);
      this.keyIndexes = keyCols.map((k) => {
        const i = this.mapped.findIndex((m) => m.column.name === k);
        if (i < 0) throw configError(`connector ${this.o.connector}: key column ${k} is not in the column mapping`);
        return i;
      });
      this.keyWriter = new CopyWriter(this.keyIndexes.map((i) => this.mapped[i].copy));
      const updates = this.mapped.filter((m) => !keyCols.includes(m.column.name)).map((m) => `${quoteIdent(m.column.name)} = EXCLUDED.${quoteIdent(m.column.name)}`);
      sql += ` ON CONFLICT (${keyCols.map(quoteIdent).join(', ')}) DO ${updates.length ? `UPDATE SET ${updates.join(', ')}` : 'NOTHING'}`;
      this.upsertSql = sql;
    }
  }

  async open(partitions: number[]): Promise<PartitionOffsets> {
    const pool = this.pool!;
    await pool.query(
      `INSERT INTO ${quoteName(this.o.offsetsTable)} (connector, topic, partition, next_offset)
       SELECT $1, $2, p, NULL FROM unnest($3::int[]) AS p ON CONFLICT DO NOTHING`,
      [this.o.connector, this.o.topic, partitions],
    );
    const r = await pool.query<{ partition: number; next_offset: string | null }>(`SELECT partition, next_offset FROM ${quoteName(this.o.offsetsTable)} WHERE connector = $1 AND topic = $2`, [
      this.o.connector,
      this.o.topic,
    ]);
    const out: PartitionOffsets = new Map();
    for (const row of r.rows) if (row.next_offset !== null) out.set(row.partition, Number(row.next_offset));
    return out;
  }

  async put(batch: readonly RecordsView[]): Promise<PartitionOffsets> {
    const raw = writesRawJson(this.mapped.map((m) => m.copy));
    try {
      return await this.putWith(batch, raw);
    } catch (err) {
      // A stored JSON text PostgreSQL refuses (class 22, data exception: a producer stored bytes that are not JSON
      // as JSON): write the batch again through the decoder, which hands such a value over as bytes.
      if (raw && typeof (err as { code?: unknown }).code === 'string' && (err as { code: string }).code.startsWith('22')) return await this.putWith(batch, false);
      throw err;
    }
  }

  private putWith(batch: readonly RecordsView[], raw: boolean): Promise<PartitionOffsets> {
    return this.putRows(batch, (firsts) => this.copyText(batch, firsts, this.o.mode === 'upsert' ? this.newestPerKey(batch, firsts) : null, raw));
  }

  /**
   * The put() path: locks the connector's offset rows, skips what the table holds, COPYs the rest (text(firsts): the
   * rows from firsts[k] on of each part) and moves the offsets, in one transaction.
   */
  private async putRows(batch: readonly OffsetRun[], text: (firsts: number[]) => Iterable<Buffer>): Promise<PartitionOffsets> {
    const client = await this.pool!.connect();
    let broken = false;
    try {
      // Statements without parameters go together in one simple query: three round trips per batch (lock, COPY, update and commit).
      const offsets = quoteName(this.o.offsetsTable);
      const mine = `connector = ${client.escapeLiteral(this.o.connector)} AND topic = ${client.escapeLiteral(this.o.topic)}`;
      const begun = (await client.query(`BEGIN; SELECT partition, next_offset FROM ${offsets} WHERE ${mine} FOR UPDATE`)) as unknown as Array<
        pg.QueryResult<{ partition: number; next_offset: string | null }>
      >;
      const stored = new Map<number, number>();
      for (const row of begun[1].rows) if (row.next_offset !== null) stored.set(row.partition, Number(row.next_offset));
      const next = new Map<number, number>();
      // Per run, the first record the database does not hold yet (runs of a partition come in offset order).
      const firsts = batch.map((v) => {
        const below = stored.get(v.partition) ?? 0;
        let i = 0;
        while (i < v.count && v.offset(i) < below) i++;
        if (i < v.count) next.set(v.partition, v.offset(v.count - 1) + 1);
        return i;
      });
      const finish: string[] = [];
      if (next.size) {
        if (this.stageSql && !this.staged.has(client)) {
          await client.query(this.stageSql);
          this.staged.add(client);
        }
        await pipeline(Readable.from(text(firsts)), client.query(copyFrom(this.copySql)));
        if (this.upsertSql) finish.push(this.upsertSql);
      }
      if (next.size) {
        const values = [...next].map(([p, o]) => `(${Math.trunc(p)}, ${Math.trunc(o)})`).join(', ');
        finish.push(`UPDATE ${offsets} AS t SET next_offset = n.next_offset FROM (VALUES ${values}) AS n(p, next_offset) WHERE t.${mine} AND t.partition = n.p`);
      }
      finish.push('COMMIT');
      await client.query(finish.join('; '));
      // Offsets safe to commit: what the database now holds for every partition of the batch.
      const safe: PartitionOffsets = new Map(stored);
      for (const [p, o] of next) safe.set(p, o);
      for (const v of batch) if (!safe.has(v.partition) && v.count) safe.set(v.partition, v.offset(v.count - 1) + 1);
      return safe;
    } catch (err) {
      broken = true;
      await client.query('ROLLBACK').catch(() => undefined);
      throw err;
    } finally {
      client.release(broken);
    }
  }

  /**
   * Streaming (SinkTask.stream, postgres-stream.ts): in insert mode, rows COPYed as their frames arrive, committed
   * with the offsets as prepare()'s are. Not for upsert (a key's newest record is known only once the batch is whole)
   * nor for stored JSON text written as it is (a value PostgreSQL refuses is written again through the decoder).
   */
  stream(): SinkStream | null {
    if (this.o.mode !== 'insert' || writesRawJson(this.copyColumns)) return null;
    return new PostgresStream({
      pool: this.pool!,
      copySql: this.copySql,
      writer: this.writers.pop() ?? new CopyWriter(this.copyColumns),
      release: (w) => void this.writers.push(w),
      moveOffsets: (client, ranges) => this.moveOffsets(client, ranges),
      put: (parts, text) => this.putRows(parts, text),
    });
  }

  /** The UPDATE that moves the connector's offset rows to each range's next offset where the stored one is at or below its first. */
  private moveOffsets(client: pg.PoolClient, ranges: Map<number, [first: number, next: number]>): string {
    const offsets = quoteName(this.o.offsetsTable);
    const mine = `connector = ${client.escapeLiteral(this.o.connector)} AND topic = ${client.escapeLiteral(this.o.topic)}`;
    const values = [...ranges].map(([p, [f, n]]) => `(${Math.trunc(p)}, ${Math.trunc(f)}, ${Math.trunc(n)})`).join(', ');
    return `UPDATE ${offsets} AS t SET next_offset = n.next_offset FROM (VALUES ${values}) AS n(p, first_offset, next_offset)
              WHERE t.${mine} AND t.partition = n.p AND coalesce(t.next_offset, 0) <= n.first_offset`;
  }

  /**
   * Pipelining (SinkTask.prepare): the batch's rows are COPYed in a transaction of their own while the batches
   * before it are still being written, on another pooled connection, without touching the offsets table. commit()
   * then locks the connector's offset rows and moves them in one UPDATE that matches only the rows whose stored
   * offset is at or below the batch's first record of that partition: when every partition matches, the database
   * holds none of the batch's records and put() would have written exactly these rows, so it commits; otherwise
   * (a re-delivery, a second instance) it rolls back and answers null, and the runner writes the batch with put(),
   * which drops what is stored. Runs of one partition in a batch are in offset order and contiguous.
   */
  async prepare(batch: readonly RecordsView[]): Promise<PreparedWrite> {
    const raw = writesRawJson(this.copyColumns);
    const client = await this.pool!.connect();
    // Idle in its transaction while earlier batches commit: a connection lost meanwhile is seen at commit.
    let lost: Error | null = null;
    const onError = (err: Error): void => void (lost = err);
    client.on('error', onError);
    let released = false;
    /** Ends the transaction (COMMIT, with the upsert before it, or ROLLBACK when null) and gives the connection back. */
    const end = async (commit: string | null): Promise<void> => {
      if (released) return;
      released = true;
      let broken = lost !== null;
      try {
        await client.query(commit ?? 'ROLLBACK');
      } catch (err) {
        broken = true;
        if (commit === null) return;
        await client.query('ROLLBACK').catch(() => undefined);
        throw err;
      } finally {
        client.off('error', onError);
        client.release(broken);
      }
    };
    const ranges = new Map<number, [first: number, next: number]>();
    try {
      for (const v of batch) {
        const r = ranges.get(v.partition);
        const next = v.offset(v.count - 1) + 1;
        if (r) r[1] = next;
        else ranges.set(v.partition, [v.offset(0), next]);
      }
      const firsts = batch.map(() => 0);
      const picks = this.o.mode === 'upsert' ? this.newestPerKey(batch, firsts) : null;
      await client.query('BEGIN');
      if (this.stageSql && !this.staged.has(client)) {
        await client.query(this.stageSql);
        this.staged.add(client);
      }
      await pipeline(Readable.from(this.copyText(batch, firsts, picks, raw)), client.query(copyFrom(this.copySql)));
    } catch (err) {
      await end(null);
      throw err;
    }
    return {
      commit: async () => {
        if (lost) {
          await end(null);
          throw lost;
        }
        let moved: pg.QueryResult;
        try {
          moved = await client.query(this.moveOffsets(client, ranges));
        } catch (err) {
          await end(null);
          throw err;
        }
        if (moved.rowCount !== ranges.size) {
          await end(null);
          return null;
        }
        await end(this.upsertSql ? `${this.upsertSql}; COMMIT` : 'COMMIT');
        return new Map([...ranges].map(([p, [, next]]) => [p, next]));
      },
      abort: () => end(null),
    };
  }

  /** The records from firsts[k] on of each view (only the picked ones when `picks`) as COPY text rows, in chunks of bytes. */
  private *copyText(batch: readonly RecordsView[], firsts: number[], picks: Uint8Array[] | null, raw: boolean): Generator<Buffer> {
    const w = this.writers.pop() ?? new CopyWriter(this.copyColumns);
    w.reset();
    try {
      for (let k = 0; k < batch.length; k++) {
        const v = batch[k];
        const pick = picks?.[k];
        for (let i = firsts[k]; i < v.count; i++) {
          if (pick && !pick[i]) continue;
          w.row(v, i, raw);
          if (w.length >= COPY_CHUNK_BYTES) yield w.take();
        }
      }
      if (w.length) yield w.take();
    } finally {
      this.writers.push(w);
    }
  }

  /**
   * Upsert cannot touch one row twice in a statement: marks each key's last
   * record (records of a key share a partition, in offset order), per view.
   */
  private newestPerKey(batch: readonly RecordsView[], firsts: number[]): Uint8Array[] {
    const w = this.keyWriter!;
    // Escaped COPY fields hold no tab: joined by one, they name the key unambiguously. Value: view index and record index.
    const last = new Map<string, [number, number]>();
    for (let k = 0; k < batch.length; k++) for (let i = firsts[k]; i < batch[k].count; i++) last.set(w.key(batch[k], i), [k, i]);
    const picks = batch.map((v) => new Uint8Array(v.count));
    for (const [k, i] of last.values()) picks[k][i] = 1;
    return picks;
  }

  async stop(): Promise<void> {
    const pool = this.pool;
    this.pool = null;
    await pool?.end();
  }
}
