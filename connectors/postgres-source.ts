/**
 * PostgreSQL source: polls a table for new rows and hands each one over as
 * an event keyed by its primary key, its value the row as JSON.
 *
 * Two modes, as Kafka Connect's JDBC source has:
 * - `incrementing`: a strictly increasing column (a serial/identity id);
 *   position = that column. A row is new when its column is above the last.
 * - `timestamp`: a timestamp column; position = (timestamp, primary key), so
 *   rows sharing a timestamp are neither skipped nor repeated. Timestamps
 *   are compared exactly, as microseconds since the epoch.
 * Both see a row once its transaction commits; a row committed after a row
 * with a higher position was polled is missed (a long transaction that took
 * an id early): `delayMs` (timestamp mode) leaves the newest rows for a later
 * poll to give such transactions time.
 */
import type pg from 'pg';
import { configError, type Settings } from './config.ts';
import { createPool, primaryKey, quoteIdent, quoteName } from './postgres-common.ts';
import type { SourcePosition, SourceRow, SourceTask } from './task.ts';
import type { Log } from './worker.ts';

export interface PostgresSourceOptions {
  connector: string;
  connection: string;
  table: string;
  mode: 'incrementing' | 'timestamp';
  /** The incrementing or timestamp column. */
  column: string;
  /** Key columns (default: the primary key). */
  key: string[] | undefined;
  /** Timestamp mode: only rows older than this are read. */
  delayMs: number;
}

export function postgresSourceOptions(connector: string, s: Settings): PostgresSourceOptions {
  const mode = s.oneOf('mode', ['incrementing', 'timestamp'] as const, 'incrementing');
  return {
    connector,
    connection: s.string('connection'),
    table: s.string('table'),
    mode,
    column: s.string(mode === 'incrementing' ? 'incrementingColumn' : 'timestampColumn'),
    key: s.has('key') ? s.stringList('key') : undefined,
    delayMs: s.int('delayMs', 0, 0, 86_400_000),
  };
}

const POS0 = '__tributary_pos0';
const POS1 = '__tributary_pos1';

export class PostgresSource implements SourceTask {
  private pool: pg.Pool | null = null;
  private keyCols: string[] = [];
  private sqlFirst = '';
  private sqlAfter = '';

  constructor(
    private readonly o: PostgresSourceOptions,
    private readonly log: Log,
  ) {}

  async start(): Promise<void> {
    this.pool ??= createPool(this.o.connection, this.o.connector, this.log);
    this.keyCols = this.o.key ?? (await primaryKey(this.pool, this.o.table));
    if (this.keyCols.length === 0) throw configError(`connector ${this.o.connector}: table ${this.o.table} has no primary key: give \`key\``);
    const t = quoteName(this.o.table);
    const col = quoteIdent(this.o.column);
    if (this.o.mode === 'incrementing') {
      const select = `SELECT *, ${col}::text AS ${POS0} FROM ${t}`;
      this.sqlFirst = `${select} ORDER BY ${col} LIMIT $1`;
      this.sqlAfter = `${select} WHERE ${col} > $2::numeric ORDER BY ${col} LIMIT $1`;
    } else {
      if (this.keyCols.length !== 1) throw configError(`connector ${this.o.connector}: timestamp mode orders ties by one key column; the key has ${this.keyCols.length}`);
      const k = quoteIdent(this.keyCols[0]);
      const micros = `(extract(epoch FROM ${col}) * 1000000)::bigint::text`;
      const delay = this.o.delayMs > 0 ? ` AND ${col} < now() - ${this.o.delayMs} * interval '1 millisecond'` : '';
      const select = `SELECT *, ${micros} AS ${POS0}, ${k}::text AS ${POS1} FROM ${t}`;
      this.sqlFirst = `${select} WHERE ${col} IS NOT NULL${delay} ORDER BY ${col}, ${k} LIMIT $1`;
      // (ts, key) > (position): the epoch plus whole microseconds is exact, as a double division would not be.
      this.sqlAfter = `${select} WHERE (${col}, ${k}) > ('epoch'::timestamptz + $2::bigint * interval '1 microsecond', $3)${delay} ORDER BY ${col}, ${k} LIMIT $1`;
    }
    await this.pool.query(`${this.sqlFirst.replace('$1', '0')}`);
  }

  async poll(after: SourcePosition | null, limit: number): Promise<SourceRow[]> {
    const pool = this.pool!;
    const r = after === null ? await pool.query(this.sqlFirst, [limit]) : await pool.query(this.sqlAfter, [limit, ...after]);
    return r.rows.map((row: Record<string, unknown>) => {
      const position = this.o.mode === 'incrementing' ? [row[POS0] as string] : [row[POS0] as string, row[POS1] as string];
      delete row[POS0];
      delete row[POS1];
      const keyValues = this.keyCols.map((k) => String(row[k]));
      return { key: keyValues.length === 1 ? keyValues[0] : JSON.stringify(keyValues), value: row, position };
    });
  }

  compare(a: SourcePosition, b: SourcePosition): number {
    for (let i = 0; i < a.length; i++) {
      const c = compareText(a[i], b[i], this.o.mode === 'timestamp' && i === 1);
      if (c !== 0) return c;
    }
    return 0;
  }

  async stop(): Promise<void> {
    const pool = this.pool;
    this.pool = null;
    await pool?.end();
  }
}

/** Integers (any length) compare as numbers; other keys (timestamp mode's tie-break) as PostgreSQL's C collation would. */
function compareText(a: string, b: string, maybeText: boolean): number {
  if (/^-?\d+$/.test(a) && /^-?\d+$/.test(b)) {
    const x = BigInt(a);
    const y = BigInt(b);
    return x < y ? -1 : x > y ? 1 : 0;
  }
  if (!maybeText && Number(a) !== Number(b)) return Number(a) - Number(b);
  return a < b ? -1 : a > b ? 1 : 0;
}
