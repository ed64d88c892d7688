/**
 * The dashboard build: dist/dashboard/ (index.html and hashed assets), which
 * the hub serves at `/`. The web client and uPlot are bundled in; paths are
 * relative so the page also works behind a proxy that mounts the hub under a prefix.
 */
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

export default defineConfig({
  root: fileURLToPath(new URL('.', import.meta.url)),
  base: './',
  logLevel: 'warn',
  build: {
    outDir: fileURLToPath(new URL('../dist/dashboard', import.meta.url)),
    emptyOutDir: true,
    target: 'es2022',
    sourcemap: true,
  },
});
