/**
 * Webhook sink against a real hub and a real HTTP endpoint that fails the
 * first attempts (503) and refuses one record for good (422): every other
 * record arrives, the refused one lands in the dead-letter topic.
 */
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startConnect } from '../helpers/connect.ts';
import { startHub, tempDir, type Hub } from '../../harness/hub.ts';
import { waitForValue } from '../../harness/wait.ts';

let hub: Hub;
let dir: string;

beforeAll(async () => {
  hub = await startHub();
  dir = tempDir('tributary-webhook-');
}, 60_000);

afterAll(async () => {
  await hub?.stop();
  hub?.cleanup();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

interface Posted {
  id: string;
  key: string;
  value: { n: number; poison?: boolean };
}

describe('webhook sink', () => {
  it('survives an endpoint that fails the first attempts and routes a permanently refused record to the dead-letter topic', async () => {
    let attempts = 0;
    const failFirst = 4;
    const delivered = new Map<string, Posted>();
    const server = http.createServer((req, res) => {
      let body = '';
      req.on('data', (d) => (body += d));
      req.on('end', () => {
        attempts++;
        if (attempts <= failFirst) return void res.writeHead(503).end('down for maintenance');
        const { records } = JSON.parse(body) as { records: Posted[] };
        if (records.some((r) => r.value.poison)) return void res.writeHead(422, { 'content-type': 'application/json' }).end('{"error":"poison is not a valid order"}');
        for (const r of records) delivered.set(r.id, r);
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as { port: number }).port;
    const file = path.join(dir, 'hooks.yaml');
    fs.writeFileSync(
      file,
      [
        `hub: { url: ${hub.wsUrl} }`,
        'connectors:',
        '  - name: hooks',
        '    type: webhook-sink',
        '    topic: events',
        `    url: http://127.0.0.1:${port}/ingest`,
        '    headers: { x-api-key: secret }',
        '    batchSize: 50',
        '    backoff: { baseMs: 50, capMs: 400 }',
      ].join('\n'),
    );
    const records = Array.from({ length: 300 }, (_, n) => ({ key: `e${n}`, value: n === 137 ? { n, poison: true } : { n } }));
    const res = await fetch(`${hub.url}/v1/topics/events/records`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ records }) });
    expect(res.status).toBe(200);
    const c = await startConnect(file);
    try {
      const status = await waitForValue(
        '299 delivered and 1 dead-lettered',
        () => c.status(),
        (s) => s[0]?.records === 300 && s[0].deadLettered === 1,
        60_000,
      );
      expect(delivered.size).toBe(299);
      expect(delivered.has('events/0/137')).toBe(false);
      expect(status[0].retries).toBeGreaterThanOrEqual(failFirst);
      expect(status[0].state).toBe('running');
      const dlq = (await (await fetch(`${hub.url}/v1/topics/hooks.dlq/partitions/0/records?offset=0`)).json()) as { records: Array<{ key: string; value: unknown; headers: Array<[string, string]> }> };
      expect(dlq.records).toHaveLength(1);
      expect(dlq.records[0].key).toBe('e137');
      expect(dlq.records[0].value).toEqual({ n: 137, poison: true });
      const headers = Object.fromEntries(dlq.records[0].headers);
      expect(headers).toMatchObject({ 'tributary.dlq.topic': 'events', 'tributary.dlq.offset': '137', 'tributary.dlq.status': '422' });
      expect(headers['tributary.dlq.reason']).toContain('poison');
      // The offsets are committed to the group named after the connector: a restart sends nothing again.
      const group = await waitForValue(
        'group caught up',
        async () => (await (await fetch(`${hub.url}/v1/groups/hooks`)).json()) as { offsets: Array<{ topic: string; committed: number; lag: number }> },
        (g) => g.offsets?.length > 0 && g.offsets.every((o) => o.lag === 0),
        30_000,
      );
      expect(group.offsets.filter((o) => o.topic === 'events').reduce((n, o) => n + o.committed, 0)).toBe(300);
      await c.stop();
      const before = attempts;
      const again = await startConnect(file);
      await waitForValue(
        'restarted',
        () => again.status(),
        (s) => s[0]?.state === 'running',
        30_000,
      );
      await new Promise((r) => setTimeout(r, 500));
      expect(attempts).toBe(before);
      await again.stop();
    } finally {
      await c.kill();
      server.close();
    }
  }, 120_000);
});
