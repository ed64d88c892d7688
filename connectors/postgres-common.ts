/**
 * What the PostgreSQL connectors share: a pool that survives the server
 * going away (the runtime retries; the pool reconnects), identifier quoting,
 * and a table's columns with their types.
 */
import pg from 'pg';
import type { Log } from './worker.ts';

/** "schema.table" or "table" → a quoted identifier ("schema"."table"). */
export function quoteName(name: string): string {
  return name
    .split('.')
    .map((part) => `"${part.replace(/"/g, '""')}"`)
    .join('.');
}

export function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/** `max` connections (default two: one writes, one is spare for a retry while the other is being torn down). */
export function createPool(connection: string, connector: string, log: Log, max = 2): pg.Pool {
  const pool = new pg.Pool({ connectionString: connection, max, connectionTimeoutMillis: 10_000, idleTimeoutMillis: 30_000 });
  // An idle connection that dies (server restart) emits here; the next query gets a fresh one.
  pool.on('error', (err) => log.warn({ connector, err: err.message }, 'postgres connection lost'));
  return pool;
}

export interface TableColumn {
  name: string;
  /** format_type(), e.g. `integer`, `character varying(20)`, `jsonb`. */
  type: string;
}

export async function tableColumns(db: pg.Pool | pg.PoolClient, table: string): Promise<TableColumn[]> {
  const r = await db.query<{ name: string; type: string }>(
    `SELECT attname AS name, format_type(atttypid, atttypmod) AS type FROM pg_attribute
      WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum`,
    [quoteName(table)],
  );
  return r.rows;
}

export async function primaryKey(db: pg.Pool, table: string): Promise<string[]> {
  const r = await db.query<{ name: string }>(
    `SELECT a.attname AS name FROM pg_index i
       JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
      WHERE i.indrelid = $1::regclass AND i.indisprimary
      ORDER BY array_position(i.indkey::int2[], a.attnum)`,
    [quoteName(table)],
  );
  return r.rows.map((x) => x.name);
}
