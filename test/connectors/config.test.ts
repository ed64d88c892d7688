/** Connectors files: mistakes are named (connector and key), and retry delays stay within their cap. */
import { describe, expect, it } from 'vitest';
import { backoffDelayMs } from '../../connectors/backoff.ts';
import { parseConnectFile } from '../../connectors/config.ts';
import { createWorker } from '../../connectors/connector-types.ts';
import { createClient } from '../../web-client/index.ts';
import { HubHttp } from '../../connectors/hub-http.ts';

const silent = { info() {}, warn() {}, error() {}, debug() {} };

function build(yaml: string) {
  const file = parseConnectFile(yaml);
  const client = createClient({ url: 'ws://127.0.0.1:1/v1/ws', outbox: 'memory' });
  try {
    return file.connectors.map((c) => createWorker(c, { client, http: new HubHttp('http://127.0.0.1:1'), log: silent }));
  } finally {
    void client.close();
  }
}

describe('connectors file', () => {
  it('reads YAML and JSON alike', () => {
    const y = parseConnectFile('hub: { url: ws://h/v1/ws }\nconnectors:\n  - { name: a, type: webhook-sink, topic: t, url: "http://x" }');
    const j = parseConnectFile(JSON.stringify({ hub: { url: 'ws://h/v1/ws' }, connectors: [{ name: 'a', type: 'webhook-sink', topic: 't', url: 'http://x' }] }));
    expect(y).toEqual(j);
    expect(y.connectors[0]).toMatchObject({ name: 'a', type: 'webhook-sink', topic: 't', settings: { url: 'http://x' }, backoff: { baseMs: 100, capMs: 30_000 } });
  });

  it.each([
    ['connectors: []', /non-empty list/],
    ['connectors:\n  - { name: a, type: nope, topic: t }', /connector a: unknown type "nope"/],
    ['connectors:\n  - { name: a, type: webhook-sink }', /connector a: topic is required/],
    ['connectors:\n  - { name: a, type: webhook-sink, topic: t, url: "http://x" }\n  - { name: a, type: webhook-sink, topic: t, url: "http://x" }', /two connectors are named a/],
    ['connectors:\n  - { name: a, type: webhook-sink, topic: t, url: "http://x", batchsize: 5 }', /connector a: unknown setting "batchsize"/],
    ['connectors:\n  - { name: a, type: postgres-sink, topic: t, connection: "postgres://x", table: t, mode: merge }', /connector a: mode must be one of insert, upsert/],
    ['connectors:\n  - { name: a, type: postgres-source, topic: t, connection: "postgres://x", table: t, mode: timestamp }', /connector a: timestampColumn must be a non-empty string/],
    ['connectors:\n  - { name: a, type: webhook-sink, topic: t, url: "http://x", backoff: { baseMs: 100, capMs: 10 } }', /capMs >= baseMs/],
  ])('refuses %j', (yaml, message) => {
    expect(() => build(yaml)).toThrow(message);
  });

  it('backoff: full jitter under min(cap, base·2^attempt)', () => {
    const o = { baseMs: 100, capMs: 5000 };
    for (let attempt = 0; attempt < 40; attempt++) {
      const ceiling = Math.min(o.capMs, o.baseMs * 2 ** attempt);
      expect(backoffDelayMs(attempt, o, () => 0)).toBe(0);
      expect(backoffDelayMs(attempt, o, () => 0.999999)).toBeLessThan(ceiling);
      expect(backoffDelayMs(attempt, o, () => 0.999999)).toBeGreaterThanOrEqual(Math.floor(ceiling * 0.99));
    }
  });
});
