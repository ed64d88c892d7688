/**
 * PostgreSQL sink against a real PostgreSQL server and a real hub: exactly
 * once across SIGKILLs of the connector process, two instances sharing the
 * partitions in one consumer group (one SIGKILLed mid-stream), and upsert
 * keeping the newest value per key (run inside the hub with --connectors).
 *
 * The hub's group session timeout is short (2 s) so a killed instance's
 * partitions move on quickly.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startConnect, type ConnectProcess } from '../helpers/connect.ts';
import { startHub, tempDir, type Hub } from '../../harness/hub.ts';
import { startPostgres, type Postgres } from '../../harness/postgres.ts';
import { waitForValue } from '../../harness/wait.ts';
import { PostgresSink } from '../../connectors/postgres-sink.ts';
import { parseConnectFile } from '../../connectors/config.ts';
import { ConnectorRuntime } from '../../connectors/runtime.ts';
import { encodeBatch, stampBatch } from '../../protocol/index.ts';
import { RecordsView } from '../../web-client/records-view.ts';
import type { SinkStream } from '../../connectors/task.ts';

const GROUP_ARGS = ['--groups-session-timeout-ms', '2000', '--groups-heartbeat-interval-ms', '500'];

let pg: Postgres;
let hub: Hub;
let dir: string;

async function post(path: string, body: unknown): Promise<Response> {
  const res = await fetch(`${hub.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  if (!res.ok) throw new Error(`${path}: ${res.status} ${await res.text()}`);
  return res;
}

async function produceOrders(topic: string, from: number, to: number): Promise<void> {
  for (let i = from; i < to; i += 1000) {
    const records = [];
    for (let j = i; j < Math.min(to, i + 1000); j++) records.push({ key: `order-${j}`, value: { id: j, customer: `c${j % 97}`, total: (j % 1000) / 10 } });
    await post(`/v1/topics/${topic}/records`, { records });
  }
}

const count = async (sql: string): Promise<number> => Number((await pg.query<{ n: string }>(sql)).rows[0].n);

beforeAll(async () => {
  [pg, hub] = await Promise.all([startPostgres(), startHub({ args: GROUP_ARGS })]);
  dir = tempDir('tributary-connect-');
}, 60_000);

afterAll(async () => {
  await hub?.stop();
  hub?.cleanup();
  await pg?.stop();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

describe('postgres sink', () => {
  it('writes a whole JSON value into a jsonb column as its stored text (escaped for COPY), and a value that is not JSON through the decoder', async () => {
    await pg.query('CREATE TABLE docs (n bigint, doc jsonb, body json, a_num numeric, a_text text, s text, ok boolean)');
    const silent = { info() {}, warn() {}, error() {}, debug() {} };
    const task = new PostgresSink(
      {
        connector: 'docs',
        topic: 'docs',
        connection: pg.url,
        table: 'docs',
        mode: 'insert',
        key: undefined,
        columns: { n: 'offset', doc: 'value', body: 'value', a_num: 'value.a', a_text: 'value.a', s: 'value.s', ok: 'value.ok' },
        offsetsTable: 'tributary_sink_offsets',
      },
      silent,
    );
    await task.start();
    await task.open([0]);
    // Stored JSON texts from `offset` on, in one batch, as a subscription's view of the frame hands them over.
    const stored = (offset: number, ...texts: string[]): RecordsView => {
      const b = encodeBatch({ records: texts.map((t) => ({ key: null, value: new TextEncoder().encode(t), encoding: 'json', headers: [], timestamp: 0 })) });
      stampBatch(b, 0, offset, 0);
      return new RecordsView('docs').read(b, 0, 0);
    };
    // Tabs, a newline and backslashes, which COPY's text format must escape; 1.50 keeps its digits only if the text went in as stored.
    await task.put([stored(0, '{"a":\t1.50,\n "s":"x\\\\y\\"z"}', '[1, 2]')]);
    // A JSON value whose bytes are not JSON: PostgreSQL refuses the stored text; the batch goes in again through the decoder.
    await task.put([stored(2, '{"ok":true}', '{nope')]);
    const rows = (await pg.query<{ n: string; a: string; s: string; doc: unknown; body: string }>("SELECT n, doc->>'a' AS a, doc->>'s' AS s, doc, body::text AS body FROM docs ORDER BY n")).rows;
    // value.FIELD columns, read from the stored bytes: what the decoded value gives (1.50 as the number 1.5, the string unescaped).
    const fields = (await pg.query('SELECT a_num::text, a_text, s, ok FROM docs ORDER BY n')).rows;
    expect(fields).toEqual([
      { a_num: '1.5', a_text: '1.5', s: 'x\\y"z', ok: null },
      { a_num: null, a_text: null, s: null, ok: null },
      { a_num: null, a_text: null, s: null, ok: true },
      { a_num: null, a_text: null, s: null, ok: null },
    ]);
    expect(rows.map((r) => r.n)).toEqual(['0', '1', '2', '3']);
    expect(rows[0]).toMatchObject({ a: '1.50', s: 'x\\y"z', body: '{"a":\t1.50,\n "s":"x\\\\y\\"z"}' });
    expect(rows[1].doc).toEqual([1, 2]);
    expect(rows[2].doc).toEqual({ ok: true });
    expect(rows[3].doc).toEqual({ 0: 123, 1: 110, 2: 111, 3: 112, 4: 101 }); // '{nope' as bytes, as before stored text
    await task.stop();
  });

  it('a batch prepared while the one before is written commits after it, and a prepared re-delivery rolls back without a row', async () => {
    await pg.query('CREATE TABLE piped (n bigint, s text)');
    const silent = { info() {}, warn() {}, error() {}, debug() {} };
    const task = new PostgresSink(
      { connector: 'piped', topic: 'piped', connection: pg.url, table: 'piped', mode: 'insert', key: undefined, columns: { n: 'offset', s: 'value.s' }, offsetsTable: 'tributary_sink_offsets' },
      silent,
    );
    await task.start();
    await task.open([0, 1]);
    const view = (partition: number, offset: number, n: number): RecordsView => {
      const texts = Array.from({ length: n }, (_, i) => JSON.stringify({ s: `p${partition}-${offset + i}` }));
      const b = encodeBatch({ records: texts.map((t) => ({ key: null, value: new TextEncoder().encode(t), encoding: 'json', headers: [], timestamp: 0 })) });
      stampBatch(b, 0, offset, 0);
      return new RecordsView('piped').read(b, partition, 0).keep();
    };
    const rows = (): Promise<number> => count('SELECT count(*) AS n FROM piped');
    await task.put([view(0, 0, 2)]);
    // Two prepared at once (the runner's pipeline): their rows are in, invisible until each commits, in order.
    const second = await task.prepare([view(0, 2, 2), view(1, 0, 3)]);
    const third = await task.prepare([view(0, 4, 1)]);
    expect(await rows()).toBe(2);
    expect(await second.commit()).toEqual(
      new Map([
        [0, 4],
        [1, 3],
      ]),
    );
    expect(await third.commit()).toEqual(new Map([[0, 5]]));
    expect(await rows()).toBe(8);
    // A re-delivery of records the table holds (partly or wholly): nothing committed; put() then drops what is stored.
    const again = await task.prepare([view(0, 3, 3)]);
    expect(await again.commit()).toBeNull();
    expect(await rows()).toBe(8);
    await task.put([view(0, 3, 3)]);
    expect(await rows()).toBe(9);
    const aborted = await task.prepare([view(1, 3, 1)]);
    await aborted.abort();
    const offsets = await pg.query<{ partition: number; next_offset: string }>("SELECT partition, next_offset FROM tributary_sink_offsets WHERE connector = 'piped' ORDER BY partition");
    expect(offsets.rows.map((r) => [r.partition, Number(r.next_offset)])).toEqual([
      [0, 6],
      [1, 3],
    ]);
    expect((await pg.query('SELECT s FROM piped ORDER BY s')).rows.map((r) => r.s)).toEqual(['p0-0', 'p0-1', 'p0-2', 'p0-3', 'p0-4', 'p0-5', 'p1-0', 'p1-1', 'p1-2']);
    await task.stop();
  });

  it('a streamed batch COPYs its rows as they are added and commits after the one before; a streamed re-delivery rolls back and rewrite() adds only what is missing', async () => {
    await pg.query('CREATE TABLE streamed (n bigint, s text)');
    const silent = { info() {}, warn() {}, error() {}, debug() {} };
    const task = new PostgresSink(
      {
        connector: 'streamed',
        topic: 'streamed',
        connection: pg.url,
        table: 'streamed',
        mode: 'insert',
        key: undefined,
        columns: { n: 'offset', s: 'value.s' },
        offsetsTable: 'tributary_sink_offsets',
      },
      silent,
    );
    await task.start();
    await task.open([0, 1]);
    const view = (partition: number, offset: number, n: number): RecordsView => {
      const texts = Array.from({ length: n }, (_, i) => JSON.stringify({ s: `p${partition}-${offset + i}`.padEnd(40, '.') }));
      const b = encodeBatch({ records: texts.map((t) => ({ key: null, value: new TextEncoder().encode(t), encoding: 'json', headers: [], timestamp: 0 })) });
      stampBatch(b, 0, offset, 0);
      // Not kept: a stream reads a frame during add() only.
      return new RecordsView('streamed').read(b, partition, 0);
    };
    const rows = (): Promise<number> => count('SELECT count(*) AS n FROM streamed');
    const add = (s: SinkStream, partition: number, offset: number, n: number, from = 0): Promise<void> | undefined => s.add(view(partition, offset, n), from, n);
    // Two open at once (the runner commits in order); each over several of its log's chunks (rows never span two).
    const first = task.stream()!;
    for (let o = 0; o < 12_000; o += 1000) await add(first, 0, o, 1000);
    await add(first, 1, 0, 10);
    const second = task.stream()!;
    await add(second, 0, 12_000, 500, 100); // records 12,000–12,099 left out (below a position)
    await add(second, 1, 10, 5);
    expect(await rows()).toBe(0);
    expect(await first.commit()).toEqual(
      new Map([
        [0, 12_000],
        [1, 10],
      ]),
    );
    expect(await second.commit()).toEqual(
      new Map([
        [0, 12_500],
        [1, 15],
      ]),
    );
    expect(await rows()).toBe(12_000 + 10 + 400 + 5);
    // A re-delivery overlapping what the table holds: commit() answers null and writes nothing; rewrite() adds the rest.
    const again = task.stream()!;
    for (let o = 11_000; o < 14_000; o += 1000) await add(again, 0, o, 1000);
    await add(again, 1, 15, 2);
    expect(await again.commit()).toBeNull();
    expect(await rows()).toBe(12_415);
    expect(await again.rewrite()).toEqual(
      new Map([
        [0, 14_000],
        [1, 17],
      ]),
    );
    expect(await rows()).toBe(12_415 + 1500 + 2);
    const aborted = task.stream()!;
    await add(aborted, 1, 17, 3);
    await aborted.abort();
    expect(await rows()).toBe(13_917);
    // Each record once, in order: offsets 0–13,999 of partition 0 less the 100 left out, 0–16 of partition 1.
    const stored = await pg.query<{ n: string; s: string }>('SELECT n, s FROM streamed ORDER BY s');
    const want = [
      ...Array.from({ length: 14_000 }, (_, i) => i)
        .filter((i) => i < 12_000 || i >= 12_100)
        .map((i) => [0, i]),
      ...Array.from({ length: 17 }, (_, i) => [1, i]),
    ]
      .map(([p, i]) => ({ n: String(i), s: `p${p}-${i}`.padEnd(40, '.') }))
      .sort((a, b) => (a.s < b.s ? -1 : 1));
    expect(stored.rows).toEqual(want);
    const offsets = await pg.query<{ partition: number; next_offset: string }>("SELECT partition, next_offset FROM tributary_sink_offsets WHERE connector = 'streamed' ORDER BY partition");
    expect(offsets.rows.map((r) => [r.partition, Number(r.next_offset)])).toEqual([
      [0, 14_000],
      [1, 17],
    ]);
    await task.stop();
    // Upsert does not stream (a key's newest record is known once the batch is whole): the runner hands it whole batches.
    const upsert = new PostgresSink(
      { connector: 'u', topic: 'u', connection: pg.url, table: 'streamed', mode: 'upsert', key: ['n'], columns: { n: 'offset' }, offsetsTable: 'tributary_sink_offsets' },
      silent,
    );
    expect(upsert.stream()).toBeNull();
  });

  it('stopped while it streams a backlog: stop() returns, no connection is left in a transaction, and a restart writes every record once', async () => {
    await post('/v1/topics', { name: 'backlog', partitions: 2 });
    await pg.query('CREATE TABLE backlog (id integer, customer text, total numeric, src_partition integer, src_offset bigint)');
    await produceOrders('backlog', 0, 30_000);
    const silent = { info() {}, warn() {}, error() {}, debug() {} };
    const file = parseConnectFile(
      JSON.stringify({
        connectors: [
          {
            name: 'backlog-db',
            type: 'postgres-sink',
            topic: 'backlog',
            connection: pg.url,
            table: 'backlog',
            batchSize: 2000,
            columns: { id: 'value.id', customer: 'value.customer', total: 'value.total', src_partition: 'partition', src_offset: 'offset' },
          },
        ],
      }),
    );
    const inTransaction = (): Promise<number> => count("SELECT count(*) AS n FROM pg_stat_activity WHERE state LIKE 'idle in transaction%' OR (state = 'active' AND query LIKE 'COPY%backlog%')");
    for (let run = 0; run < 2; run++) {
      const runtime = new ConnectorRuntime(file, { url: hub.wsUrl, log: silent });
      await runtime.start();
      if (run === 0)
        await waitForValue(
          'records written',
          () => runtime.status()[0].records,
          (n) => n > 0,
        );
      else
        await waitForValue(
          'every record written',
          () => count('SELECT count(*) AS n FROM backlog'),
          (n) => n === 30_000,
        );
      await runtime.stop();
      await waitForValue('no transaction left open', inTransaction, (n) => n === 0);
    }
    expect(await count('SELECT count(DISTINCT (src_partition, src_offset)) AS n FROM backlog')).toBe(30_000);
  });

  it('50,000 events reach the table exactly once while the connector is SIGKILLed and restarted three times', async () => {
    const total = 50_000;
    await post('/v1/topics', { name: 'orders', partitions: 4 });
    await pg.query('CREATE TABLE orders (id integer, customer text, total numeric, src_partition integer, src_offset bigint)');
    const file = path.join(dir, 'orders-sink.yaml');
    fs.writeFileSync(
      file,
      [
        `hub: { url: ${hub.wsUrl} }`,
        'connectors:',
        '  - name: orders-db',
        '    type: postgres-sink',
        '    topic: orders',
        `    connection: ${pg.url}`,
        '    table: orders',
        '    batchSize: 500',
        '    columns: { id: value.id, customer: value.customer, total: value.total, src_partition: partition, src_offset: offset }',
      ].join('\n'),
    );
    await produceOrders('orders', 0, 10_000);
    // The rest arrives while the connector runs and dies.
    const producing = (async () => {
      for (let i = 10_000; i < total; i += 2000) {
        await produceOrders('orders', i, i + 2000);
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
    let c: ConnectProcess = await startConnect(file);
    try {
      for (const atLeast of [4000, 15_000, 30_000]) {
        await waitForValue(
          `${atLeast} rows`,
          () => count('SELECT count(*) AS n FROM orders'),
          (n) => n >= atLeast,
          90_000,
        );
        await c.kill();
        c = await startConnect(file);
      }
      await producing;
      await waitForValue(
        'every event in the table',
        () => count('SELECT count(*) AS n FROM orders'),
        (n) => n >= total,
        120_000,
      );
      // Let a duplicate, if the sink wrote one, land before counting.
      const status = await waitForValue(
        'lag 0',
        () => c.status(),
        (s) => s[0]?.lag === 0,
        30_000,
      );
      expect(status[0].state).toBe('running');
      expect(await count('SELECT count(*) AS n FROM orders')).toBe(total);
      expect(await count('SELECT count(DISTINCT id) AS n FROM orders')).toBe(total);
      expect(await count('SELECT count(DISTINCT (src_partition, src_offset)) AS n FROM orders')).toBe(total);
      // The offsets the sink resumes from are the table's: one past the last row of each partition.
      const offsets = await pg.query<{ partition: number; next_offset: string; max: string }>(
        `SELECT o.partition, o.next_offset, (SELECT max(src_offset) FROM orders WHERE src_partition = o.partition) AS max
           FROM tributary_sink_offsets o WHERE connector = 'orders-db' ORDER BY partition`,
      );
      expect(offsets.rows).toHaveLength(4);
      for (const row of offsets.rows) expect(Number(row.next_offset)).toBe(Number(row.max) + 1);
    } finally {
      await c.kill();
    }
  }, 300_000);

  it('two instances in one group share the partitions and write every record exactly once, also when one is SIGKILLed mid-stream; partitions added later are taken up', async () => {
    const produced = 40_000;
    const total = produced + 2000;
    const partitions = 6;
    await post('/v1/topics', { name: 'payments', partitions });
    await pg.query('CREATE TABLE payments (id integer, src_partition integer, src_offset bigint)');
    const file = path.join(dir, 'payments-sink.yaml');
    fs.writeFileSync(
      file,
      [
        `hub: { url: ${hub.wsUrl} }`,
        'connectors:',
        '  - name: payments-db',
        '    type: postgres-sink',
        '    topic: payments',
        '    group: payments-writers',
        `    connection: ${pg.url}`,
        '    table: payments',
        '    batchSize: 300',
        '    columns: { id: value.id, src_partition: partition, src_offset: offset }',
      ].join('\n'),
    );
    const produce = async (from: number, to: number): Promise<void> => {
      for (let i = from; i < to; i += 1000) {
        const records = [];
        for (let j = i; j < Math.min(to, i + 1000); j++) records.push({ key: `pay-${j}`, value: { id: j } });
        await post('/v1/topics/payments/records', { records });
      }
    };
    type Status = Array<{ state: string; lag: number | null; partitions: Array<{ partition: number }> }>;
    const held = async (c: ConnectProcess): Promise<number[]> => ((await c.status()) as unknown as Status)[0]?.partitions.map((p) => p.partition) ?? [];
    await produce(0, 8000);
    const a = await startConnect(file);
    const b = await startConnect(file);
    try {
      // Both hold some partitions, none twice, all of them between the two.
      await waitForValue(
        'the partitions shared',
        async () => [await held(a), await held(b)],
        ([x, y]) => x.length > 0 && y.length > 0 && x.length + y.length === partitions && new Set([...x, ...y]).size === partitions,
        60_000,
      );
      const view = (await (await fetch(`${hub.url}/v1/groups/payments-writers`)).json()) as { members: Array<{ partitions: number[] }> };
      expect(view.members).toHaveLength(2);
      const producing = (async () => {
        for (let i = 8000; i < produced; i += 2000) {
          await produce(i, i + 2000);
          await new Promise((r) => setTimeout(r, 100));
        }
      })();
      // The group is told only what the table holds: every offset below a committed one is a row (read the group first).
      let checkedCommits = 0;
      const unwritten: string[] = [];
      const commitsWritten = async (): Promise<void> => {
        const d = (await (await fetch(`${hub.url}/v1/groups/payments-writers`)).json()) as { offsets?: Array<{ partition: number; committed: number | null }> };
        for (const o of d.offsets ?? []) {
          if (!o.committed) continue;
          const rows = await count(`SELECT count(*) AS n FROM payments WHERE src_partition = ${o.partition} AND src_offset < ${o.committed}`);
          if (rows !== o.committed) unwritten.push(`partition ${o.partition} committed at ${o.committed} with ${rows} rows below`);
          checkedCommits++;
        }
      };
      await waitForValue(
        'rows from both',
        async () => (await commitsWritten(), count('SELECT count(*) AS n FROM payments')),
        (n) => n >= 15_000,
        90_000,
      );
      await commitsWritten();
      expect(unwritten).toEqual([]);
      expect(checkedCommits).toBeGreaterThan(0);
      await a.kill();
      // After the session timeout the group gives the survivor everything.
      await waitForValue(
        'b holds every partition',
        () => held(b),
        (x) => x.length === partitions,
        60_000,
      );
      await producing;
      // Two more partitions: the group assigns them, and their records reach the table too.
      const grown = await fetch(`${hub.url}/v1/topics/payments`, { method: 'PATCH', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ partitions: partitions + 2 }) });
      expect(grown.status).toBe(200);
      await waitForValue(
        'b holds the new partitions',
        () => held(b),
        (x) => x.length === partitions + 2,
        60_000,
      );
      await produce(produced, total);
      await waitForValue(
        'every event in the table',
        () => count('SELECT count(*) AS n FROM payments'),
        (n) => n >= total,
        120_000,
      );
      expect(await count(`SELECT count(*) AS n FROM payments WHERE src_partition >= ${partitions}`)).toBeGreaterThan(0);
      await waitForValue(
        'connector lag 0',
        async () => ((await b.status()) as unknown as Status)[0],
        (s) => s?.lag === 0,
        30_000,
      );
      // The group's lag agrees: b commits to the group after each database commit.
      const groups = await waitForValue(
        'group lag 0',
        async () => ((await (await fetch(`${hub.url}/v1/groups`)).json()) as { groups: Array<{ group: string; lag: number; members: number }> }).groups,
        (g) => g.find((x) => x.group === 'payments-writers')?.lag === 0,
        30_000,
      );
      expect(groups.find((x) => x.group === 'payments-writers')?.members).toBe(1);
      expect(await count('SELECT count(*) AS n FROM payments')).toBe(total);
      expect(await count('SELECT count(DISTINCT id) AS n FROM payments')).toBe(total);
      expect(await count('SELECT count(DISTINCT (src_partition, src_offset)) AS n FROM payments')).toBe(total);
    } finally {
      await a.kill();
      await b.kill();
    }
  }, 300_000);

  it('upsert inside the hub (--connectors) ends with one row per key holding its newest value; status, lag, pause and resume at /v1/connectors, and /metrics', async () => {
    await pg.query('CREATE TABLE prices (sku text PRIMARY KEY, price integer NOT NULL, src_offset bigint NOT NULL, doc jsonb)');
    const file = path.join(dir, 'prices-sink.yaml');
    fs.writeFileSync(
      file,
      JSON.stringify({
        connectors: [
          {
            name: 'prices-db',
            type: 'postgres-sink',
            topic: 'prices',
            connection: pg.url,
            table: 'prices',
            mode: 'upsert',
            batchSize: 300,
            columns: { sku: 'key', price: 'value.price', src_offset: 'offset', doc: 'value' },
          },
        ],
      }),
    );
    const inHub = await startHub({ args: ['--connectors', file] });
    try {
      await fetch(`${inHub.url}/v1/topics`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: 'prices', partitions: 3 }) });
      // 100 keys, 40 prices each, in rising order: the newest is the largest.
      const skus = 100;
      const rounds = 40;
      for (let round = 0; round < rounds; round++) {
        const records = Array.from({ length: skus }, (_, k) => ({ key: `sku-${k}`, value: { price: round * 1000 + k } }));
        const res = await fetch(`${inHub.url}/v1/topics/prices/records`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ records }) });
        expect(res.status).toBe(200);
      }
      const status = await waitForValue(
        'the connector caught up',
        async () => ((await (await fetch(`${inHub.url}/v1/connectors`)).json()) as { connectors: Array<{ name: string; state: string; lag: number | null; records: number }> }).connectors,
        (c) => c[0]?.lag === 0 && c[0].records === skus * rounds,
        60_000,
      );
      expect(status[0]).toMatchObject({ name: 'prices-db', state: 'running', lag: 0 });
      const rows = await pg.query<{ sku: string; price: number }>('SELECT sku, price FROM prices ORDER BY sku');
      expect(rows.rows).toHaveLength(skus);
      for (const r of rows.rows) expect(r.price).toBe((rounds - 1) * 1000 + Number(r.sku.slice(4)));
      // The whole value into a jsonb column (written from the stored JSON text).
      expect((await pg.query("SELECT doc FROM prices WHERE sku = 'sku-7'")).rows[0].doc).toEqual({ price: (rounds - 1) * 1000 + 7 });
      // Paused, the connector writes nothing while records wait; resumed, it catches up.
      const control = async (action: string) => (await fetch(`${inHub.url}/v1/connectors/prices-db/${action}`, { method: 'POST' })).json() as Promise<{ state: string }>;
      expect((await control('pause')).state).toBe('paused');
      const newest = Array.from({ length: skus }, (_, k) => ({ key: `sku-${k}`, value: { price: 99_000 + k } }));
      await fetch(`${inHub.url}/v1/topics/prices/records`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ records: newest }) });
      const connectors = async () => ((await (await fetch(`${inHub.url}/v1/connectors`)).json()) as { connectors: Array<{ state: string; lag: number | null }> }).connectors;
      await waitForValue('lag seen while paused', connectors, (c) => (c[0].lag ?? 0) > 0, 30_000);
      expect((await pg.query('SELECT count(*) AS n FROM prices WHERE price >= 99000')).rows[0].n).toBe('0');
      expect((await control('resume')).state).toBe('running');
      await waitForValue('caught up after resume', connectors, (c) => c[0].lag === 0, 30_000);
      await waitForValue(
        'newest prices',
        async () => (await pg.query('SELECT count(*) AS n FROM prices WHERE price >= 99000')).rows[0].n,
        (n) => n === '100',
        30_000,
      );
      expect((await fetch(`${inHub.url}/v1/connectors/nope/pause`, { method: 'POST' })).status).toBe(404);
      const metrics = await (await fetch(`${inHub.url}/metrics`)).text();
      expect(metrics).toMatch(/tributary_connector_up\{connector="prices-db",type="postgres-sink",state="running"\} 1/);
      expect(metrics).toMatch(/tributary_connector_lag\{connector="prices-db",type="postgres-sink",partition="0"\} 0/);
      // Totals are counters (rate() and increase() work on them), equal to the status and never falling between scrapes.
      const written = (await connectors())[0] as unknown as { records: number };
      for (const name of ['records', 'dead_lettered', 'retries']) expect(metrics).toContain(`# TYPE tributary_connector_${name}_total counter`);
      const recordsTotal = (text: string): number => Number(/tributary_connector_records_total\{connector="prices-db",type="postgres-sink"\} (\d+)/.exec(text)?.[1]);
      expect(recordsTotal(metrics)).toBe(written.records);
      expect(written.records).toBeGreaterThanOrEqual(skus * rounds + skus);
      expect(metrics).toMatch(/tributary_connector_dead_lettered_total\{connector="prices-db",type="postgres-sink"\} 0/);
      expect(recordsTotal(await (await fetch(`${inHub.url}/metrics`)).text())).toBe(written.records);
    } finally {
      await inHub.stop();
      inHub.cleanup();
    }
  }, 120_000);

  it('a sink that cannot start (a column its table lacks) is failed with the reason, writes nothing and leaves its group at once', async () => {
    // A mistake in the settings is not retried: the connector is failed, and no member of it stays in the group.
    await pg.query('CREATE TABLE bad_target (id integer)');
    await post('/v1/topics', { name: 'bad', partitions: 2 });
    await produceOrders('bad', 0, 200);
    const silent = { info() {}, warn() {}, error() {}, debug() {} };
    const file = parseConnectFile(
      JSON.stringify({ connectors: [{ name: 'bad', type: 'postgres-sink', topic: 'bad', connection: pg.url, table: 'bad_target', columns: { id: 'value.id', nope: 'value.customer' } }] }),
    );
    const runtime = new ConnectorRuntime(file, { url: hub.wsUrl, log: silent });
    try {
      await runtime.start();
      const status = await waitForValue(
        'the sink failed',
        () => runtime.status()[0],
        (st) => st.state === 'failed',
      );
      expect(status.lastError).toMatch(/no column "nope"/);
      const members = async (): Promise<number> => {
        const res = await fetch(`${hub.url}/v1/groups/bad`);
        return res.status === 404 ? 0 : ((await res.json()) as { members: unknown[] }).members.length;
      };
      await waitForValue('the group without members', members, (n) => n === 0, 10_000);
      expect(runtime.status()[0]).toMatchObject({ state: 'failed', records: 0, retries: 0 });
      expect(await count('SELECT count(*) AS n FROM bad_target')).toBe(0);
    } finally {
      await runtime.stop();
    }
  });
});
