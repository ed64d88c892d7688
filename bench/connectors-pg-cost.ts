/**
 * What PostgreSQL's own CPU per row is for COPY of the connectors bench's
 * rows, by the state of the table and the number of COPY statements: why the
 * warm sink costs PostgreSQL about twice what warm COPY does (issue 18).
 *
 * One server, one warm connection (it loads the rows once first), three
 * rounds of: COPY of 200,000 rows into the emptied table (the bench's warm
 * COPY); the same appended to the table as it is (one statement); appended as
 * the sink writes (ten transactions of 20,000 rows, each locking and moving an
 * offsets row); and the ten statements in one transaction. Each in COPY's
 * text format and, with `--binary`, its binary format too. For each: the CPU
 * of all PostgreSQL processes per row and their minor page faults per 1,000
 * rows (from /proc; clock ticks of 10 ms, so ±0.05 µs/row).
 *   node --import tsx bench/connectors-pg-cost.ts [--binary]
 */
import fs from 'node:fs';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { startPostgres } from '../harness/postgres.ts';

const ROWS = 200_000;
const PER_TRANSACTION = 20_000;
const ROWS_PER_CHUNK = 1000;

function procStat(pid: number): { ms: number; faults: number } {
  try {
    const s = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return { ms: (Number(f[11]) + Number(f[12])) * 10, faults: Number(f[7]) };
  } catch {
    return { ms: 0, faults: 0 };
  }
}

function childrenOf(ppid: number): number[] {
  const out: number[] = [];
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const s = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
      if (Number(s.slice(s.lastIndexOf(')') + 2).split(' ')[1]) === ppid) out.push(Number(d));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

/** The bench's row j (id, customer, total, partition, offset) in COPY text. */
function textRows(from: number, n: number): Buffer {
  let s = '';
  for (let j = from; j < from + n; j++) s += `${j}\tcustomer-${j % 997}\t${(j % 10_000) / 100}\t${j % 4}\t${j >> 2}\n`;
  return Buffer.from(s);
}

/** numeric's binary form of k/100 (k ≥ 0): base-10000 digits, weight, sign, display scale. */
function numericCents(k: number): Buffer {
  const whole = Math.floor(k / 100);
  const cents = k % 100;
  const digits: number[] = [];
  for (let x = whole; x > 0; x = Math.floor(x / 10_000)) digits.unshift(x % 10_000);
  const weight = digits.length ? digits.length - 1 : -1;
  if (cents) digits.push(cents * 100);
  const b = Buffer.alloc(8 + 2 * digits.length);
  b.writeInt16BE(digits.length, 0);
  b.writeInt16BE(digits.length ? weight : 0, 2);
  b.writeUInt16BE(0, 4);
  b.writeInt16BE(cents === 0 ? 0 : cents % 10 === 0 ? 1 : 2, 6);
  digits.forEach((d, i) => b.writeInt16BE(d, 8 + 2 * i));
  return b;
}

/** The same rows in COPY's binary format (no header or trailer). */
function binaryRows(from: number, n: number): Buffer {
  const parts: Buffer[] = [];
  for (let j = from; j < from + n; j++) {
    const customer = Buffer.from(`customer-${j % 997}`);
    const total = numericCents(j % 10_000);
    const b = Buffer.alloc(2 + 8 + 4 + customer.length + 4 + total.length + 8 + 12);
    // Fields: a count, then per field its length and bytes.
    let o = b.writeInt16BE(5, 0);
    o = b.writeInt32BE(4, o);
    o = b.writeInt32BE(j, o);
    o = b.writeInt32BE(customer.length, o);
    o += customer.copy(b, o);
    o = b.writeInt32BE(total.length, o);
    o += total.copy(b, o);
    o = b.writeInt32BE(4, o);
    o = b.writeInt32BE(j % 4, o);
    o = b.writeInt32BE(8, o);
    b.writeBigInt64BE(BigInt(j >> 2), o);
    parts.push(b);
  }
  return Buffer.concat(parts);
}

const BINARY_HEADER = Buffer.concat([Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1'), Buffer.alloc(8)]);
const BINARY_TRAILER = Buffer.from([0xff, 0xff]);

function chunks(binary: boolean, from: number, n: number): Buffer[] {
  const out: Buffer[] = binary ? [BINARY_HEADER] : [];
  for (let i = from; i < from + n; i += ROWS_PER_CHUNK) out.push(binary ? binaryRows(i, ROWS_PER_CHUNK) : textRows(i, ROWS_PER_CHUNK));
  if (binary) out.push(BINARY_TRAILER);
  return out;
}

const db = await startPostgres();
try {
  const admin = new pg.Client({ connectionString: db.url });
  await admin.connect();
  await admin.query('CREATE TABLE orders (id integer, customer text, total numeric, src_partition integer, src_offset bigint) WITH (autovacuum_enabled = false)');
  await admin.query('CREATE TABLE offsets (next_offset bigint)');
  await admin.query('INSERT INTO offsets VALUES (0)');
  const backend = (await admin.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0].pid;
  const postmaster = Number(fs.readFileSync(`/proc/${backend}/stat`, 'utf8').split(') ')[1].split(' ')[1]);
  const conn = new pg.Client({ connectionString: db.url });
  await conn.connect();
  const copy = async (binary: boolean, data: Buffer[]): Promise<void> =>
    pipeline(Readable.from(data), conn.query(copyFrom(`COPY orders (id, customer, total, src_partition, src_offset) FROM STDIN${binary ? ' (FORMAT binary)' : ''}`)));
  const measure = async (name: string, fn: () => Promise<void>): Promise<void> => {
    const before = new Map(childrenOf(postmaster).map((p) => [p, procStat(p)]));
    await fn();
    let ms = 0;
    let faults = 0;
    for (const p of childrenOf(postmaster)) {
      const now = procStat(p);
      const was = before.get(p) ?? { ms: 0, faults: 0 };
      ms += now.ms - was.ms;
      faults += now.faults - was.faults;
    }
    console.log(`${name.padEnd(58)} PostgreSQL ${((ms * 1000) / ROWS).toFixed(2)} µs/row, ${Math.round((faults * 1000) / ROWS)} page faults per 1,000 rows`);
  };
  const formats = process.argv.includes('--binary') ? [false, true] : [false];
  for (let round = 1; round <= 3; round++) {
    for (const binary of formats) {
      const tag = `round ${round}, ${binary ? 'binary' : 'text'}:`;
      const all = chunks(binary, 0, ROWS);
      const batches: Buffer[][] = [];
      for (let i = 0; i < ROWS; i += PER_TRANSACTION) batches.push(chunks(binary, i, PER_TRANSACTION));
      await admin.query('TRUNCATE orders');
      await copy(binary, all);
      await admin.query('TRUNCATE orders');
      await measure(`${tag} emptied table, one statement`, () => copy(binary, all));
      await measure(`${tag} appended, one statement`, () => copy(binary, all));
      await measure(`${tag} appended, ${ROWS / PER_TRANSACTION} transactions with offsets`, async () => {
        for (const b of batches) {
          await conn.query('BEGIN; SELECT next_offset FROM offsets FOR UPDATE');
          await copy(binary, b);
          await conn.query(`UPDATE offsets SET next_offset = next_offset + ${PER_TRANSACTION}; COMMIT`);
        }
      });
      await measure(`${tag} appended, ${ROWS / PER_TRANSACTION} statements in one transaction`, async () => {
        await conn.query('BEGIN');
        for (const b of batches) await copy(binary, b);
        await conn.query('COMMIT');
      });
    }
  }
  await conn.end();
  await admin.end();
} finally {
  await db.stop();
}
