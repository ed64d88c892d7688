import { defineConfig } from 'vitest/config';

// Root Vite config: the test runner's settings. The browser bundle has its own
// (web-client/vite.config.ts), and so has the dashboard.
//
// Two projects. `unit`: files that run only in-process code (no hub, no child
// process, no browser, no process-wide listeners or globals) share a worker's
// loaded modules (`isolate: false`), since loading the TypeScript modules again
// for each such file cost more than the file's own tests (18 of them: 58 s →
// 35 s on a loaded 2-core machine). A file joins the list only if it keeps to
// that rule; everything else runs isolated, one fresh process per file.
const UNIT = [
  'test/auth/bearer.test.ts',
  'test/auth/origin.test.ts',
  'test/auth/principal.test.ts',
  'test/auth/token-verifier.test.ts',
  'test/config/auth-config.test.ts',
  'test/config/readme-config.test.ts',
  'test/dashboard/ring-series.test.ts',
  'test/groups/group-state.test.ts',
  'test/protocol/batch.test.ts',
  'test/protocol/cbor-scan.test.ts',
  'test/protocol/frames.test.ts',
  'test/protocol/partitioner.test.ts',
  'test/protocol/topic-patterns.test.ts',
  'test/protocol/values.test.ts',
  'test/storage/cleanup.test.ts',
  'test/storage/compaction-bounded.test.ts',
  'test/storage/concurrency.test.ts',
  'test/storage/idempotence.test.ts',
  'test/storage/log-roundtrip.test.ts',
  'test/storage/recovery.test.ts',
  'test/streams/topology.test.ts',
  'test/streams/windows.test.ts',
  'test/transport/dashboard-files.test.ts',
  'test/web-client/outbox-idb-chunk.test.ts',
];

const shared = { testTimeout: 30_000, hookTimeout: 60_000, pool: 'forks' as const };

export default defineConfig({
  test: {
    maxWorkers: 2,
    reporters: ['default'],
    projects: [{ test: { ...shared, name: 'unit', include: UNIT, isolate: false } }, { test: { ...shared, name: 'hub', include: ['test/**/*.test.ts'], exclude: UNIT } }],
  },
});
