/**
 * The dashboard's built files (dist/dashboard/, from `npm run build`), read
 * once at start-up and served from memory: index.html at `/` and the hashed
 * assets under `/assets/`. The build is a few hundred KiB; reading it per
 * request would cost a file open for nothing. A hub started without the
 * build still serves its API, and `/` says how to build the page.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const DASHBOARD_DIR = path.join(packageRoot(path.dirname(fileURLToPath(import.meta.url))), 'dist', 'dashboard');

/**
 * The repository's root: the nearest directory above `from` whose package.json is Tributary's. Not a fixed
 * `../..`: the hub also runs from a compiled copy under node_modules/.cache/ (bin/compiled.mjs).
 */
function packageRoot(from: string): string {
  for (let dir = from; ; dir = path.dirname(dir)) {
    try {
      if ((JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')) as { name?: unknown }).name === 'tributary') return dir;
    } catch {
      // no package.json here (or not JSON): look further up
    }
    if (path.dirname(dir) === dir) return path.resolve(from, '..', '..');
  }
}

/** Files larger than this are not held in memory (source maps of a debug build, say): the page does not need them. */
const MAX_FILE_BYTES = 4 * 1024 * 1024;

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.map': 'application/json',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
};

interface DashboardFile {
  body: Uint8Array;
  contentType: string;
  /** Hashed asset names never change content: cache them for good; the page itself is revalidated. */
  cacheControl: string;
}

export interface DashboardFiles {
  /** index.html, or null when the build is missing. */
  index: DashboardFile | null;
  /** By URL path (`/assets/index-XXXX.js`). */
  assets: Map<string, DashboardFile>;
  /** Why there is no page, when there is none. */
  missing?: string;
}

export function loadDashboardFiles(dir = DASHBOARD_DIR): DashboardFiles {
  const assets = new Map<string, DashboardFile>();
  let index: DashboardFile | null = null;
  try {
    index = { body: fs.readFileSync(path.join(dir, 'index.html')), contentType: TYPES['.html'], cacheControl: 'no-cache' };
  } catch {
    return { index: null, assets, missing: `the dashboard is not built: ${path.join(dir, 'index.html')} is missing (run \`npm run build\`)` };
  }
  const assetDir = path.join(dir, 'assets');
  for (const name of fs.existsSync(assetDir) ? fs.readdirSync(assetDir) : []) {
    const file = path.join(assetDir, name);
    const stat = fs.statSync(file);
    if (!stat.isFile() || stat.size > MAX_FILE_BYTES) continue;
    const type = TYPES[path.extname(name)] ?? 'application/octet-stream';
    assets.set(`/assets/${name}`, { body: fs.readFileSync(file), contentType: type, cacheControl: 'public, max-age=31536000, immutable' });
  }
  return { index, assets };
}
