/**
 * The README's connector examples, as written (test/connectors/examples/,
 * the same text as the README's blocks), run against a real hub and a real
 * PostgreSQL: only the addresses are replaced by the test's.
 */
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import YAML from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startConnect } from '../helpers/connect.ts';
import { startHub, tempDir, type Hub } from '../../harness/hub.ts';
import { startPostgres, type Postgres } from '../../harness/postgres.ts';
import { waitForValue } from '../../harness/wait.ts';

const EXAMPLES = path.join(path.dirname(new URL(import.meta.url).pathname), 'examples');
const README = fs.readFileSync(path.join(EXAMPLES, '../../../README.md'), 'utf8');

let pg: Postgres;
let hub: Hub;
let dir: string;

beforeAll(async () => {
  [pg, hub] = await Promise.all([startPostgres(), startHub()]);
  dir = tempDir('tributary-examples-');
}, 60_000);

afterAll(async () => {
  await hub?.stop();
  hub?.cleanup();
  await pg?.stop();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

/** The example with the test's hub and addresses put in; its text must be the README's. */
function example(name: string, patch: (c: Record<string, unknown>) => void): string {
  const text = fs.readFileSync(path.join(EXAMPLES, name), 'utf8');
  expect(README).toContain(text);
  const doc = YAML.parse(text) as { hub: { url: string }; connectors: Array<Record<string, unknown>> };
  doc.hub.url = hub.wsUrl;
  patch(doc.connectors[0]);
  const file = path.join(dir, name);
  fs.writeFileSync(file, YAML.stringify(doc));
  return file;
}

async function produce(topic: string, records: unknown[]): Promise<void> {
  const res = await fetch(`${hub.url}/v1/topics/${topic}/records`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ records }) });
  expect(res.status).toBe(200);
}

describe('README connector examples', () => {
  it('postgres-sink.yaml upserts orders into PostgreSQL', async () => {
    await pg.query('CREATE TABLE orders (id text PRIMARY KEY, total numeric, at timestamptz, src_offset bigint)');
    const file = example('postgres-sink.yaml', (c) => (c.connection = pg.url));
    await produce('orders', [
      { key: 'order-1', value: { total: 12.5 } },
      { key: 'order-2', value: { total: 3 } },
      { key: 'order-1', value: { total: 14 } },
    ]);
    const c = await startConnect(file);
    try {
      const rows = await waitForValue(
        'two rows',
        async () => (await pg.query<{ id: string; total: string }>('SELECT id, total FROM orders ORDER BY id')).rows,
        (r) => r.length === 2 && r[0].total === '14',
        30_000,
      );
      expect(rows).toEqual([
        { id: 'order-1', total: '14' },
        { id: 'order-2', total: '3' },
      ]);
    } finally {
      await c.stop();
    }
  }, 90_000);

  it('postgres-source.yaml produces new signups', async () => {
    await pg.query('CREATE TABLE signups (id bigserial PRIMARY KEY, email text, created_at timestamptz)');
    await pg.query(`INSERT INTO signups (email, created_at) VALUES ('a@example.com', now()), ('b@example.com', now())`);
    const file = example('postgres-source.yaml', (c) => (c.connection = pg.url));
    const c = await startConnect(file);
    try {
      const hw = async (): Promise<number> => {
        const res = await fetch(`${hub.url}/v1/topics/signups`);
        if (res.status !== 200) return 0;
        return ((await res.json()) as { offsets: Array<{ highWatermark: number }> }).offsets.reduce((n, o) => n + o.highWatermark, 0);
      };
      await waitForValue('two signups', hw, (n) => n === 2, 30_000);
      await pg.query(`INSERT INTO signups (email, created_at) VALUES ('c@example.com', now())`);
      await waitForValue('three signups', hw, (n) => n === 3, 30_000);
      expect(((await (await fetch(`${hub.url}/v1/topics/signups`)).json()) as { partitions: number }).partitions).toBe(3);
    } finally {
      await c.stop();
    }
  }, 90_000);

  it('webhook-sink.yaml POSTs orders with its headers', async () => {
    const seen: Array<{ auth: string | undefined; ids: string[] }> = [];
    const server = http.createServer((req, res) => {
      let body = '';
      req.on('data', (d) => (body += d));
      req.on('end', () => {
        seen.push({ auth: req.headers.authorization, ids: (JSON.parse(body) as { records: Array<{ id: string }> }).records.map((r) => r.id) });
        res.writeHead(200).end();
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as { port: number }).port;
    const file = example('webhook-sink.yaml', (c) => (c.url = `http://127.0.0.1:${port}/hooks/orders`));
    await produce('orders', [{ key: 'order-3', value: { total: 1 } }]);
    const c = await startConnect(file);
    try {
      await waitForValue(
        'every order posted',
        () => seen.flatMap((s) => s.ids).length,
        (n) => n >= 4,
        30_000,
      );
      expect(seen[0].auth).toBe('Bearer s3cret');
      expect(new Set(seen.flatMap((s) => s.ids))).toEqual(new Set(['orders/0/0', 'orders/0/1', 'orders/0/2', 'orders/0/3']));
    } finally {
      await c.stop();
      server.close();
    }
  }, 90_000);
});
