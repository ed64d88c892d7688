/**
 * Where the browser tests save their screenshots: a temp folder on an
 * ordinary run, so that running the tests leaves the checkout clean, and
 * docs/img/ (the pictures the README and docs show) only when
 * TRIBUTARY_UPDATE_SCREENSHOTS=1 asks to refresh them.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const DOCS_IMG = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../docs/img');

/** The file to write screenshot `name` (e.g. `dashboard-topics.png`) to; its folder exists. */
export function screenshotPath(name: string): string {
  const dir = process.env.TRIBUTARY_UPDATE_SCREENSHOTS === '1' ? DOCS_IMG : path.join(os.tmpdir(), 'tributary-screenshots');
  fs.mkdirSync(dir, { recursive: true });
  return path.join(dir, name);
}
