/**
 * Runs a scenario that another part of the project ships as a module
 * (`bench/protocol.ts` → runProtocolBench, `bench/storage.ts` → runStorageBench, `bench/browser-replay.ts` → runBrowserReplayBench,
 * `bench/outbox.ts` → runOutboxBench, `bench/edge.ts` → runEdgeBench, `bench/groups.ts` → runGroupsBench,
 * `bench/streams.ts` → runStreamsBench, `bench/connectors.ts` → runConnectorsBench) in a process of its own, and prints its rows as `RESULT [json]`.
 *   node --import tsx bench/load/module-scenario.ts protocol|storage|browser-replay|outbox|edge|groups|streams|connectors [--quick]
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { RESULT_PREFIX } from './job.ts';

const BENCH_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const MODULES: Record<string, { file: string; fn: string }> = {
  protocol: { file: 'protocol.ts', fn: 'runProtocolBench' },
  storage: { file: 'storage.ts', fn: 'runStorageBench' },
  'browser-replay': { file: 'browser-replay.ts', fn: 'runBrowserReplayBench' },
  edge: { file: 'edge.ts', fn: 'runEdgeBench' },
  outbox: { file: 'outbox.ts', fn: 'runOutboxBench' },
  groups: { file: 'groups.ts', fn: 'runGroupsBench' },
  streams: { file: 'streams.ts', fn: 'runStreamsBench' },
  connectors: { file: 'connectors.ts', fn: 'runConnectorsBench' },
  jetstream: { file: 'jetstream.ts', fn: 'runJetStreamBench' },
};

async function main(): Promise<void> {
  const name = process.argv[2] ?? '';
  const spec = MODULES[name];
  if (!spec) throw new Error(`unknown module scenario ${name}`);
  const file = path.join(BENCH_DIR, spec.file);
  if (!fs.existsSync(file)) throw new Error(`${spec.file} does not exist yet`);
  const mod = (await import(file)) as Record<string, unknown>;
  const fn = mod[spec.fn];
  if (typeof fn !== 'function') throw new Error(`${spec.file} does not export ${spec.fn}`);
  const out: unknown = await (fn as (o: { quick: boolean }) => Promise<unknown>)({ quick: process.argv.includes('--quick') });
  const rows = Array.isArray(out) ? out : out && typeof out === 'object' && Array.isArray((out as { results?: unknown }).results) ? (out as { results: unknown[] }).results : [out];
  process.stdout.write(`${RESULT_PREFIX}${JSON.stringify(rows)}\n`);
  process.exit(0);
}

main().catch((e: unknown) => {
  process.stderr.write(`module scenario failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exit(2);
});
