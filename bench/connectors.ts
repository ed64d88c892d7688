/**
 * The PostgreSQL sink's rows/s into PostgreSQL beside the two usual ways of
 * loading the same rows from the same machine in the same run: a plain
 * multi-row INSERT (batches of 1,000, one statement each, autocommit) and
 * COPY FROM STDIN (text format, one stream), each on a connection of its
 * own as the sink's pool is (see loadOnce), and COPY once more on a warm
 * connection (one that loaded the rows before). The sink's figure is end to
 * end: records read from the hub over the web client (onView: a frame per
 * call as columns, no object per record), mapped, written and
 * their offsets committed in the same transactions. Each row runs twice and
 * only the second is timed (the first warms the JIT, PostgreSQL's and the
 * hub's caches the same for all); the sink's start-up (connect, group join,
 * offsets read), which the connected baselines do not pay, is reported.
 * Its pool's connections are new in that row, so a last row gives the sink
 * warm, in steady state (as in production, where it runs for hours): one run
 * over three copies of the events, only the middle one timed.
 *   node --import tsx bench/connectors.ts [--quick]
 */
import fs from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import { pathToFileURL } from 'node:url';
import pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { parseConnectFile } from '../connectors/config.ts';
import { ConnectorRuntime } from '../connectors/runtime.ts';
import { PostgresSink } from '../connectors/postgres-sink.ts';
import type { SinkStream } from '../connectors/task.ts';
import { createClient, type RecordsView } from '../web-client/index.ts';
import { startHub } from '../harness/hub.ts';
import { startPostgres } from '../harness/postgres.ts';

export interface BenchResult {
  scenario: 'connectors';
  system: string;
  eventsPerSec: number;
  notes?: string;
}

const TABLE = 'CREATE TABLE IF NOT EXISTS orders (id integer, customer text, total numeric, src_partition integer, src_offset bigint)';

interface Row {
  id: number;
  customer: string;
  total: number;
  partition: number;
  offset: number;
}

/** The sink's default batchSize: the most records per transaction. */
const SINK_BATCH = 20_000;

const silent = { info() {}, warn() {}, error() {}, debug() {} };

async function timed(fn: () => Promise<void>): Promise<number> {
  const t = performance.now();
  await fn();
  return (performance.now() - t) / 1000;
}

/** CPU time (user + system) of a process so far, in ms, from /proc (clock ticks of 10 ms), and its minor page faults. */
function cpuOf(pid: number): { ms: number; faults: number } {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { ms: (Number(f[11]) + Number(f[12])) * 10, faults: Number(f[7]) };
  } catch {
    return { ms: 0, faults: 0 }; // exited
  }
}
const cpuMsOf = (pid: number): number => cpuOf(pid).ms;

/** The children of a process (PostgreSQL's postmaster: its backends and background workers). */
function childrenOf(ppid: number): number[] {
  const out: number[] = [];
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === ppid) out.push(Number(d));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

/**
 * CPU spent per row by each process of a step (this one: the client and the
 * sink; the hub; PostgreSQL's processes): on a shared, loaded machine the
 * rates swing with the load, the CPU each row costs much less.
 */
class CpuMeter {
  private start = { self: 0, hub: 0, pg: new Map<number, { ms: number; faults: number }>() };
  constructor(
    private readonly hubPid: number,
    private readonly postmaster: number,
  ) {}
  begin(): void {
    const u = process.cpuUsage();
    this.start = { self: (u.user + u.system) / 1000, hub: cpuMsOf(this.hubPid), pg: new Map(childrenOf(this.postmaster).map((p) => [p, cpuOf(p)])) };
  }
  /**
   * µs of CPU per row since begin(), per process group, and PostgreSQL's minor page faults per 1,000 rows (a
   * backend's first touches of shared buffers); call before the step's PostgreSQL connections close.
   */
  end(rows: number): Cpu {
    const u = process.cpuUsage();
    let pgMs = 0;
    let faults = 0;
    for (const p of childrenOf(this.postmaster)) {
      const now = cpuOf(p);
      const was = this.start.pg.get(p) ?? { ms: 0, faults: 0 };
      pgMs += now.ms - was.ms;
      faults += now.faults - was.faults;
    }
    const per = (ms: number): number => Math.round((ms * 1000 * 10) / rows) / 10;
    return {
      client: per((u.user + u.system) / 1000 - this.start.self),
      hub: per(cpuMsOf(this.hubPid) - this.start.hub),
      postgres: per(pgMs),
      pgFaults: Math.round((faults * 1000) / rows),
    };
  }
}

interface Cpu {
  client: number;
  hub: number;
  postgres: number;
  pgFaults: number;
}

const cpuNote = (c: Cpu): string => `CPU µs/row: client ${c.client}, hub ${c.hub}, PostgreSQL ${c.postgres} (${c.pgFaults} page faults per 1,000 rows)`;

export async function runConnectorsBench(opts: { quick: boolean }): Promise<BenchResult[]> {
  const events = opts.quick ? 50_000 : 200_000;
  const partitions = 4;
  const progress = (m: string): void => void process.stderr.write(`connectors bench: ${m}\n`);
  const [db, hub] = await Promise.all([startPostgres(), startHub({ args: ['--topic-fsync', 'never'] })]);
  progress(`PostgreSQL and hub up; producing ${events} events`);
  const client = new pg.Client({ connectionString: db.url });
  await client.connect();
  try {
    const backend = (await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0].pid;
    const postmaster = Number(fs.readFileSync(`/proc/${backend}/stat`, 'utf8').split(') ')[1].split(' ')[1]);
    const meter = new CpuMeter(hub.proc.pid!, postmaster);
    await db.query(TABLE);
    // No autovacuum on the table: its ANALYZE after a row's inserts would land, at random, in a later row's time and
    // PostgreSQL CPU.
    await db.query('ALTER TABLE orders SET (autovacuum_enabled = false)');
    // The events, into the hub first (not timed); the baselines load the same rows.
    await fetch(`${hub.url}/v1/topics`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: 'orders', partitions }) });
    const rows: Row[] = [];
    const perPartition = new Array<number>(partitions).fill(0);
    const produceAll = async (keepRows: boolean): Promise<void> => {
      for (let i = 0; i < events; i += 1000) {
        const records = [];
        for (let j = i; j < i + 1000; j++) {
          const partition = j % partitions;
          records.push({ key: `order-${j}`, value: { id: j, customer: `customer-${j % 997}`, total: (j % 10_000) / 100 }, partition });
          // The baselines' rows: the first copy only (the warm sink's more copies would only grow this heap).
          if (keepRows) rows.push({ id: j, customer: `customer-${j % 997}`, total: (j % 10_000) / 100, partition, offset: perPartition[partition] });
          perPartition[partition]++;
        }
        const res = await fetch(`${hub.url}/v1/topics/orders/records`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ records }) });
        if (!res.ok) throw new Error(`produce: ${res.status} ${await res.text()}`);
      }
    };
    await produceAll(true);

    const results: BenchResult[] = [];
    const count = async (): Promise<number> => Number((await client.query('SELECT count(*) AS n FROM orders')).rows[0].n);
    const push = (system: string, seconds: number, notes: string): void => {
      results.push({ scenario: 'connectors', system, eventsPerSec: Math.round(events / seconds), notes });
    };

    // Each baseline load runs on a connection of its own, opened before the clock starts, as the sink's
    // pool is its own: a new PostgreSQL backend pays for its first touch of the shared buffers and WAL
    // (~4,500 page faults and ~0.5 µs/row more CPU over 200,000 rows than a backend that loaded before), and
    // a baseline on the warmed-up connection would be measured without that cost and the sink with it.
    const loadOn = async (loader: pg.Client, load: (loader: pg.Client) => Promise<void>, empty = true): Promise<{ seconds: number; cpu: Cpu }> => {
      if (empty) await client.query('TRUNCATE orders');
      meter.begin();
      const seconds = await timed(() => load(loader));
      return { seconds, cpu: meter.end(events) };
    };
    const loadOnce = async (load: (loader: pg.Client) => Promise<void>): Promise<{ seconds: number; cpu: Cpu }> => {
      const loader = new pg.Client({ connectionString: db.url });
      await loader.connect();
      try {
        return await loadOn(loader, load);
      } finally {
        await loader.end();
      }
    };
    // Every row is run twice, the first untimed: a warm-up of the same size (JIT of this client's
    // code, PostgreSQL's caches and the hub's) so that no row pays a cold start the others do not.
    progress('multi-row INSERT');
    // Plain multi-row INSERT, batches of 1,000.
    const insertAll = async (loader: pg.Client): Promise<void> => {
      for (let i = 0; i < rows.length; i += 1000) {
        const params: unknown[] = [];
        const tuples: string[] = [];
        for (const r of rows.slice(i, i + 1000)) {
          const n = params.length;
          tuples.push(`($${n + 1}, $${n + 2}, $${n + 3}, $${n + 4}, $${n + 5})`);
          params.push(r.id, r.customer, r.total, r.partition, r.offset);
        }
        await loader.query(`INSERT INTO orders (id, customer, total, src_partition, src_offset) VALUES ${tuples.join(', ')}`, params);
      }
    };
    await loadOnce(insertAll);
    const { seconds: insertSeconds, cpu: insertCpu } = await loadOnce(insertAll);
    if ((await count()) !== events) throw new Error('INSERT baseline lost rows');
    push('multi-row INSERT (1,000 rows per statement)', insertSeconds, `a connection of its own, autocommit; ${cpuNote(insertCpu)}`);

    progress('COPY');
    // COPY FROM STDIN, text format.
    const copyAll = async (loader: pg.Client): Promise<void> => {
      const stream = loader.query(copyFrom('COPY orders (id, customer, total, src_partition, src_offset) FROM STDIN'));
      async function* lines(): AsyncGenerator<string> {
        for (let i = 0; i < rows.length; i += 1000) {
          let chunk = '';
          for (const r of rows.slice(i, i + 1000)) chunk += `${r.id}\t${r.customer}\t${r.total}\t${r.partition}\t${r.offset}\n`;
          yield chunk;
        }
      }
      await pipeline(Readable.from(lines()), stream);
    };
    await loadOnce(copyAll);
    const { seconds: copySeconds, cpu: copyCpu } = await loadOnce(copyAll);
    if ((await count()) !== events) throw new Error('COPY baseline lost rows');
    push('COPY FROM STDIN', copySeconds, `one stream on a connection of its own, text format; ${cpuNote(copyCpu)}`);
    // The same on a warm connection (its warm-up load ran on it): what COPY costs once its backend has touched the
    // shared and WAL buffers. The sink's connections are new in every run, as the fresh rows' are; this row says
    // how much that costs.
    const warm = new pg.Client({ connectionString: db.url });
    await warm.connect();
    let warmSeconds: number;
    let appendSeconds: number;
    try {
      await loadOn(warm, copyAll);
      const w = await loadOn(warm, copyAll);
      warmSeconds = w.seconds;
      if ((await count()) !== events) throw new Error('COPY baseline lost rows');
      push('COPY FROM STDIN, warm connection', warmSeconds, `one stream on a connection that ran the warm-up load; ${cpuNote(w.cpu)}`);
      // Once more on that connection, into the table as it is (not emptied): as the sink's rows do, these go into new
      // pages, in shared buffers the backend has not touched (the loads above, each into an emptied table, got back
      // the buffers their TRUNCATE freed). Not the goal's baseline; it says what a growing table costs PostgreSQL.
      const a = await loadOn(warm, copyAll, false);
      appendSeconds = a.seconds;
      if ((await count()) !== 2 * events) throw new Error('COPY baseline lost rows');
      push('COPY FROM STDIN, warm connection, appended', appendSeconds, `one stream on the warm connection into the table holding the load before; ${cpuNote(a.cpu)}`);
    } finally {
      await warm.end();
    }

    progress('consume only');
    // What the web client alone reads from the hub (the sink's upper bound on this machine now).
    // As the sink reads: a frame per call as a view (no record objects), a copy of it kept.
    const readAll = async (name: string): Promise<{ views: RecordsView[]; seconds: number; cpu: Cpu }> => {
      const views: RecordsView[] = [];
      let n = 0;
      const reader = createClient({ url: hub.wsUrl, outbox: 'memory', name });
      meter.begin();
      const seconds = await timed(
        () =>
          new Promise<void>((resolve) => {
            const onView = (v: RecordsView): void => {
              views.push(v.keep());
              n += v.count;
              if (n === events) resolve();
            };
            for (let p = 0; p < partitions; p++) reader.subscribe('orders', { partitions: [p], from: 0, creditBytes: 4 * 1024 * 1024, onView });
          }),
      );
      const cpu = meter.end(events);
      await reader.close();
      return { views, seconds, cpu };
    };
    await readAll('bench-reader-warm-up');
    const { views: consumed, seconds: readSeconds, cpu: readCpu } = await readAll('bench-reader');
    push('web client reading the topic (no writes)', readSeconds, `the upper bound of the sink: hub → client only; ${cpuNote(readCpu)}`);

    progress('the sink write stage');
    // The sink's own part: the records already read, written by the task as the runtime hands them over.
    const columns = { id: 'value.id', customer: 'value.customer', total: 'value.total', src_partition: 'partition', src_offset: 'offset' };
    const writeAll = async (connector: string): Promise<{ seconds: number; cpu: Cpu }> => {
      await client.query('TRUNCATE orders');
      const task = new PostgresSink({ connector, topic: 'orders', connection: db.url, table: 'orders', mode: 'insert', key: undefined, columns, offsetsTable: 'tributary_sink_offsets' }, silent);
      await task.start();
      await task.open([0, 1, 2, 3]);
      meter.begin();
      const seconds = await timed(async () => {
        // Frames handed over as the runtime does: into a streamed batch (its rows COPYed as they are added) of up to
        // SINK_BATCH records, committed with the offsets after the one before (two waiting at most).
        const commits: Array<Promise<void>> = [];
        let open: SinkStream | null = null;
        const close = (): void => {
          const s = open!;
          open = null;
          const before = commits.at(-1);
          commits.push(
            (async (): Promise<void> => {
              await before;
              if (!(await s.commit())) throw new Error('a streamed batch did not commit');
            })(),
          );
        };
        for (const v of consumed) {
          for (let from = 0; from < v.count;) {
            open ??= task.stream()!;
            const to = Math.min(v.count, from + SINK_BATCH - open.count);
            const wait = open.add(v, from, to);
            from = to;
            if (open.count >= SINK_BATCH) close();
            if (wait) await wait;
            while (commits.length > 2) await commits.shift();
          }
          // As the runner does between frames: the COPY's and the commits' socket I/O in between.
          await new Promise<void>((resolve) => setImmediate(resolve));
        }
        if (open) close();
        await Promise.all(commits);
      });
      const cpu = meter.end(events);
      await task.stop();
      if ((await count()) !== events) throw new Error('the sink write stage lost rows');
      return { seconds, cpu };
    };
    await writeAll('bench-write-warm-up');
    const { seconds: writeSeconds, cpu: writeCpu } = await writeAll('bench-write');
    push(
      'postgres-sink write stage (records in hand → PostgreSQL)',
      writeSeconds,
      `${Math.round((100 * events) / writeSeconds / Math.max(events / insertSeconds, events / copySeconds))}% of the faster baseline; rows COPYed as they are handed over, one transaction per ${SINK_BATCH.toLocaleString('en')} with the offsets; ${cpuNote(writeCpu)}`,
    );

    progress('the sink');
    // The sink, end to end from the hub; the warm-up under another name (its own offsets, from 0).
    const sinkFile = (name: string): ReturnType<typeof parseConnectFile> =>
      parseConnectFile(
        JSON.stringify({
          connectors: [
            {
              name,
              type: 'postgres-sink',
              topic: 'orders',
              connection: db.url,
              table: 'orders',
              batchSize: SINK_BATCH,
              columns: { id: 'value.id', customer: 'value.customer', total: 'value.total', src_partition: 'partition', src_offset: 'offset' },
            },
          ],
        }),
      );
    const sinkAll = async (name: string): Promise<{ seconds: number; startup: number; cpu: Cpu }> => {
      await client.query('TRUNCATE orders');
      const runtime = new ConnectorRuntime(sinkFile(name), { url: hub.wsUrl, log: silent });
      meter.begin();
      // Until the group has assigned the partitions and the sink has read its offsets (connect, join, open): a cost
      // the baselines (connected already, no group) do not pay, so it is reported, and left out of one ratio.
      let startup = 0;
      const t0 = performance.now();
      const seconds = await timed(async () => {
        await runtime.start();
        const deadline = Date.now() + 10 * 60_000;
        while (runtime.status()[0].records < events) {
          if (Date.now() > deadline) throw new Error(`sink stalled at ${runtime.status()[0].records} records: ${runtime.status()[0].lastError}`);
          if (!startup && runtime.status()[0].partitions.length) startup = (performance.now() - t0) / 1000;
          await new Promise((r) => setTimeout(r, startup ? 5 : 1));
        }
      });
      const cpu = meter.end(events);
      await runtime.stop();
      if ((await count()) !== events) throw new Error('the sink lost or duplicated rows');
      return { seconds, startup, cpu };
    };
    await sinkAll('bench-sink-warm-up');
    const { seconds: sinkSeconds, startup: sinkStartup, cpu: sinkCpu } = await sinkAll('bench-sink');
    const faster = Math.max(events / insertSeconds, events / copySeconds);
    const pct = (seconds: number, baseline: number): number => Math.round((100 * events) / seconds / baseline);
    push(
      'postgres-sink end to end (hub → PostgreSQL)',
      sinkSeconds,
      `${pct(sinkSeconds, faster)}% of the faster baseline (${pct(sinkSeconds - sinkStartup, faster)}% after its start-up of ${Math.round(sinkStartup * 1000)} ms: connect, group join, offsets read), ${pct(sinkSeconds, events / warmSeconds)}% of COPY on a warm connection, ${Math.round((100 * readSeconds) / sinkSeconds)}% of the read bound; batches of up to ${SINK_BATCH.toLocaleString('en')}; ${cpuNote(sinkCpu)}`,
    );

    progress('the sink, warm (steady state)');
    // The sink as it runs in production: for hours, on warm connections. The topic gets the same events twice more
    // (3·events in all, after every row above has run) and one sink reads it from 0 in one runtime (one process,
    // one pool, one table). Not timed: its first `events` records (the size of warm COPY's warm-up load: start-up,
    // JIT, its pool's new backends' first touches of the shared and WAL buffers). Timed: from the moment its
    // committed records reach `events` to the moment they reach 2·events (polled each ms), the whole path, hub →
    // client → COPY → commit with the offsets, exactly once. The third copy is still being read when the clock
    // stops, so what the sink had read ahead (its buffer, the client's credit) is about the same at both ends: the
    // timed part neither gets a head start nor a drain without reads.
    // What the rows above kept (the read bound's frames, the baselines' rows) goes first, so that the sink's GC does
    // not mark it: a sink's process holds no such heap.
    consumed.length = 0;
    rows.length = 0;
    await produceAll(false);
    await produceAll(false);
    const steadyName = 'bench-sink-steady';
    const steady = await (async (): Promise<{ seconds: number; timedRows: number; cpu: Cpu }> => {
      await client.query('TRUNCATE orders');
      const runtime = new ConnectorRuntime(sinkFile(steadyName), { url: hub.wsUrl, log: silent });
      const status = runtime.worker(steadyName)!.status;
      const deadline = Date.now() + 10 * 60_000;
      const until = async (n: number): Promise<void> => {
        while (status.records < n) {
          if (Date.now() > deadline) throw new Error(`sink stalled at ${status.records} records: ${status.lastError}`);
          await new Promise((r) => setTimeout(r, 1));
        }
      };
      try {
        await runtime.start();
        await until(events);
        const t0 = performance.now();
        const from = status.records;
        meter.begin();
        await until(2 * events);
        const seconds = (performance.now() - t0) / 1000;
        const timedRows = status.records - from;
        const cpu = meter.end(timedRows);
        return { seconds, timedRows, cpu };
      } finally {
        await runtime.stop();
      }
    })();
    // Exactly once: each partition's rows are offsets 0 … next_offset − 1 of the sink's offsets table, each once.
    const held = (
      await client.query<{ partition: number; next: string; n: string; d: string; top: string }>(
        `SELECT o.partition, o.next_offset AS next, count(t.*) AS n, count(DISTINCT t.src_offset) AS d, coalesce(max(t.src_offset), -1) AS top
           FROM tributary_sink_offsets o LEFT JOIN orders t ON t.src_partition = o.partition
          WHERE o.connector = $1 GROUP BY o.partition, o.next_offset`,
        [steadyName],
      )
    ).rows;
    const written = held.reduce((sum, r) => sum + Number(r.n), 0);
    if (held.length !== partitions || held.some((r) => r.n !== r.d || r.n !== r.next || Number(r.top) + 1 !== Number(r.next)) || written < 2 * events)
      throw new Error(`the warm sink lost or duplicated rows: ${JSON.stringify(held)}`);
    const steadyRate = steady.timedRows / steady.seconds;
    results.push({
      scenario: 'connectors',
      system: 'postgres-sink end to end, warm (steady state)',
      eventsPerSec: Math.round(steadyRate),
      notes: `${Math.round((100 * steadyRate * warmSeconds) / events)}% of COPY on a warm connection (${Math.round((100 * steadyRate * appendSeconds) / events)}% of it appended), ${Math.round((100 * steadyRate * copySeconds) / events)}% of COPY on a fresh one, ${Math.round((100 * steadyRate * readSeconds) / events)}% of the read bound; ${steady.timedRows.toLocaleString('en')} rows timed in one run after its first ${events.toLocaleString('en')} (not timed: start-up, JIT, the pool's first touches) and before its last ${events.toLocaleString('en')} (read ahead, not drained); ${cpuNote(steady.cpu)}`,
    });
    return results;
  } finally {
    await client.end().catch(() => undefined);
    await hub.stop();
    hub.cleanup();
    await db.stop();
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const rows = await runConnectorsBench({ quick: process.argv.includes('--quick') });
  for (const r of rows) console.log(`${r.system.padEnd(48)} ${String(r.eventsPerSec).padStart(9)} rows/s  ${r.notes ?? ''}`);
}
