/**
 * The browser bundle: dist/web-client/tributary.js, one ES module with no
 * bare imports (idb, cbor-x's browser build and protocol/ inlined), loadable
 * as is with <script type="module">. The Node seam (runtime.ts) imports
 * node-runtime.ts by a run-time specifier, so `ws` and node:fs never enter it.
 */
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

const root = fileURLToPath(new URL('..', import.meta.url));

export default defineConfig({
  root,
  logLevel: 'warn',
  build: {
    outDir: 'dist/web-client',
    emptyOutDir: true,
    target: 'es2022',
    minify: false,
    sourcemap: true,
    lib: {
      entry: fileURLToPath(new URL('./index.ts', import.meta.url)),
      formats: ['es'],
      fileName: () => 'tributary.js',
    },
  },
});
