import { defineConfig } from 'vitest/config';

// Root Vite config: the test runner's settings. The browser bundle has its own
// (web-client/vite.config.ts), and so will the dashboard.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: 'forks',
    maxWorkers: 2,
    reporters: ['default'],
  },
});
