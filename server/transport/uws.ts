/**
 * Loads uWebSockets.js and tells whether its native binary is what loaded.
 *
 * The npm alias package (@trufflesuite/uws-js-unofficial) silently swaps in
 * a slow pure-Node implementation (its dist/) when the binary for this
 * platform/ABI cannot load, or when UWS_USE_FALLBACK is set. The hub refuses
 * to run on it unless the operator allows it: the performance the design
 * promises comes from the native server.
 */
import { createRequire } from 'node:module';
import path from 'node:path';

export type Uws = typeof import('uWebSockets.js');

export interface LoadedUws {
  uws: Uws;
  native: boolean;
  /** What is running, for the start-up log. */
  description: string;
}

const require = createRequire(import.meta.url);

export function loadUws(): LoadedUws {
  const entry = require.resolve('uWebSockets.js');
  const uws = require('uWebSockets.js') as Uws;
  const binary = path.join(path.dirname(entry), '..', 'binaries', `uws_${process.platform}_${process.arch}_${process.versions.modules}.node`);
  // The package's entry requires either that binary or ../dist/index: whichever is in the cache is what runs.
  const native = require.cache[binary] !== undefined;
  const description = native
    ? `uWebSockets.js native (${path.basename(binary)})`
    : `uWebSockets.js pure-Node fallback (native ${path.basename(binary)} not loaded${process.env.UWS_USE_FALLBACK ? '; UWS_USE_FALLBACK is set' : ''})`;
  return { uws, native, description };
}
