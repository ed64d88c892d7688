/**
 * PostgreSQL source against a real PostgreSQL server and a real hub: rows
 * inserted before, while and after the connector runs (and while it is
 * SIGKILLed mid-stream) each become exactly one event.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startConnect, type ConnectProcess } from '../helpers/connect.ts';
import { startHub, tempDir, type Hub } from '../../harness/hub.ts';
import { startPostgres, type Postgres } from '../../harness/postgres.ts';
import { waitForValue } from '../../harness/wait.ts';

let pg: Postgres;
let hub: Hub;
let dir: string;

interface Rec {
  key: string;
  value: Record<string, unknown>;
  headers: Array<[string, string]>;
}

async function readTopic(topic: string): Promise<Rec[]> {
  const info = (await (await fetch(`${hub.url}/v1/topics/${topic}`)).json()) as { offsets: Array<{ partition: number; highWatermark: number }> };
  const out: Rec[] = [];
  for (const { partition, highWatermark } of info.offsets) {
    let offset = 0;
    while (offset < highWatermark) {
      const page = (await (await fetch(`${hub.url}/v1/topics/${topic}/partitions/${partition}/records?offset=${offset}&limit=1000`)).json()) as { records: Rec[]; nextOffset: number };
      out.push(...page.records);
      offset = page.nextOffset;
    }
  }
  return out;
}

async function topicSize(topic: string): Promise<number> {
  const res = await fetch(`${hub.url}/v1/topics/${topic}`);
  if (res.status === 404) return 0;
  const info = (await res.json()) as { offsets: Array<{ highWatermark: number }> };
  return info.offsets.reduce((n, o) => n + o.highWatermark, 0);
}

function writeFile(name: string, connector: Record<string, unknown>): string {
  const file = path.join(dir, `${name}.yaml`);
  fs.writeFileSync(file, JSON.stringify({ hub: { url: hub.wsUrl }, connectors: [connector] }));
  return file;
}

beforeAll(async () => {
  [pg, hub] = await Promise.all([startPostgres(), startHub()]);
  dir = tempDir('tributary-source-');
}, 60_000);

afterAll(async () => {
  await hub?.stop();
  hub?.cleanup();
  await pg?.stop();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

describe('postgres source', () => {
  it('picks up rows inserted while it runs and after restarts (one a SIGKILL mid-stream), with no duplicate events', async () => {
    await pg.query('CREATE TABLE readings (id bigserial PRIMARY KEY, sensor text NOT NULL, v integer NOT NULL)');
    const insert = (n: number) => pg.query('INSERT INTO readings (sensor, v) SELECT $1 || (g % 7), g FROM generate_series(1, $2::int) g', ['s', n]);
    await insert(3000);
    const file = writeFile('readings', {
      name: 'readings-src',
      type: 'postgres-source',
      topic: 'readings',
      connection: pg.url,
      table: 'readings',
      mode: 'incrementing',
      incrementingColumn: 'id',
      partitions: 3,
      pollIntervalMs: 100,
      batchSize: 250,
    });
    let c: ConnectProcess = await startConnect(file);
    try {
      // Killed while the first rows are being produced.
      await waitForValue(
        'some events',
        () => topicSize('readings'),
        (n) => n >= 500,
        60_000,
        5,
      );
      await c.kill();
      c = await startConnect(file);
      await waitForValue(
        'the first 3,000 rows',
        () => topicSize('readings'),
        (n) => n >= 3000,
        60_000,
      );
      // Rows inserted while it runs.
      for (let i = 0; i < 5; i++) await insert(100);
      await waitForValue(
        '3,500 events',
        () => topicSize('readings'),
        (n) => n >= 3500,
        60_000,
      );
      // Rows inserted while it is down, then after the restart.
      await c.stop();
      await insert(400);
      c = await startConnect(file);
      await insert(100);
      await waitForValue(
        '4,000 events',
        () => topicSize('readings'),
        (n) => n >= 4000,
        60_000,
      );
      const status = (await c.status())[0];
      expect(status.state).toBe('running');
      // A duplicate, had the restart re-sent one, would have landed by now; poll twice more to be sure.
      await new Promise((r) => setTimeout(r, 500));
      const records = await readTopic('readings');
      expect(records).toHaveLength(4000);
      const ids = new Set(records.map((r) => r.key));
      expect(ids.size).toBe(4000);
      for (let id = 1; id <= 4000; id++) expect(ids.has(String(id))).toBe(true);
      const one = records.find((r) => r.key === '42')!;
      expect(one.value).toMatchObject({ id: '42', sensor: 's0', v: 42 });
    } finally {
      await c.kill();
    }
  }, 240_000);

  it('timestamp mode: rows sharing a timestamp and rows updated later each become one event, across a restart', async () => {
    await pg.query('CREATE TABLE profiles (id integer PRIMARY KEY, name text, updated_at timestamptz NOT NULL)');
    // Ten rows with one timestamp (ties broken by the key), ten more a microsecond apart.
    await pg.query(`INSERT INTO profiles SELECT g, 'p' || g, '2026-01-01 00:00:00.000001+00' FROM generate_series(1, 10) g`);
    await pg.query(`INSERT INTO profiles SELECT g, 'p' || g, '2026-01-01 00:00:00.000001+00'::timestamptz + g * interval '1 microsecond' FROM generate_series(11, 20) g`);
    const file = writeFile('profiles', {
      name: 'profiles-src',
      type: 'postgres-source',
      topic: 'profiles',
      connection: pg.url,
      table: 'profiles',
      mode: 'timestamp',
      timestampColumn: 'updated_at',
      pollIntervalMs: 100,
      batchSize: 3,
    });
    let c = await startConnect(file);
    try {
      await waitForValue(
        '20 events',
        () => topicSize('profiles'),
        (n) => n >= 20,
        60_000,
      );
      await c.stop();
      await pg.query(`UPDATE profiles SET name = 'renamed', updated_at = '2026-02-01+00' WHERE id IN (3, 15)`);
      c = await startConnect(file);
      await waitForValue(
        '22 events',
        () => topicSize('profiles'),
        (n) => n >= 22,
        60_000,
      );
      await new Promise((r) => setTimeout(r, 500));
      const records = await readTopic('profiles');
      expect(records).toHaveLength(22);
      const renamed = records
        .filter((r) => r.value.name === 'renamed')
        .map((r) => r.key)
        .sort();
      expect(renamed).toEqual(['15', '3']);
      expect(new Set(records.filter((r) => r.value.name !== 'renamed').map((r) => r.key)).size).toBe(20);
    } finally {
      await c.kill();
    }
  }, 120_000);
});
