// The client commands (cli/ and the web client it uses) compiled once into
// plain JavaScript by esbuild and run from there, rebuilt when one of their
// source files changed. Each `tributary topic|produce|consume|groups` run is a
// process start: through tsx's loader (a hooks thread, every module resolved
// and its cache checked through it) a start cost ~0.8 s of CPU, 3–4 s on a
// busy 2-core machine; from the compiled files ~0.25 s. The hub (`serve`,
// `connect`) still runs through tsx: one start per process lifetime.
//
// Kept in node_modules/.cache/tributary-cli/: build-*/ directories and a
// manifest naming the current one and its inputs. Fresh when no input was
// modified after the build began; a build is written in a directory of its
// own and the manifest renamed over the old one, so processes starting at
// the same time never see half a build; one of them builds (build.lock), the
// others wait for it. Any failure (no esbuild, a read-only
// directory) answers null and the caller falls back to tsx.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const CACHE = path.join(ROOT, 'node_modules', '.cache', 'tributary-cli');
const MANIFEST = path.join(CACHE, 'manifest.json');
/** Held by the process that builds: the others (a test file starting several commands at once) wait for its build. */
const LOCK = path.join(CACHE, 'build.lock');
/** A lock older than this was left by a builder that died. */
const STALE_LOCK_MS = 60_000;
const WAIT_FOR_BUILD_MS = 30_000;
const ENTRY = 'cli/main.ts';
/** Old builds are removed after this long (a process started from one may still load its lazy chunks meanwhile). */
const OLD_BUILD_MS = 24 * 60 * 60 * 1000;

/** Path of the compiled entry, building it first when missing or stale; null when it cannot be built. */
export async function compiledCliEntry() {
  try {
    const current = freshBuild();
    if (current) return current;
    fs.mkdirSync(CACHE, { recursive: true });
    if (!takeLock()) {
      const built = await waitForBuild();
      if (built) return built;
    }
    try {
      return await build();
    } finally {
      fs.rmSync(LOCK, { force: true });
    }
  } catch {
    return null;
  }
}

function takeLock() {
  try {
    fs.closeSync(fs.openSync(LOCK, 'wx'));
    return true;
  } catch {
    const st = fs.statSync(LOCK, { throwIfNoEntry: false });
    if (st && Date.now() - st.mtimeMs > STALE_LOCK_MS) {
      fs.rmSync(LOCK, { force: true });
      return takeLock();
    }
    return false;
  }
}

/** Another process is building: its result, or null when it takes too long (then this one builds too). */
async function waitForBuild() {
  const deadline = Date.now() + WAIT_FOR_BUILD_MS;
  while (Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100));
    const built = freshBuild();
    if (built) return built;
    if (!fs.existsSync(LOCK)) return freshBuild();
  }
  return null;
}

function freshBuild() {
  let manifest;
  try {
    manifest = JSON.parse(fs.readFileSync(MANIFEST, 'utf8'));
  } catch {
    return null;
  }
  const entry = path.join(CACHE, manifest.dir, 'main.mjs');
  if (!fs.existsSync(entry)) return null;
  for (const input of manifest.inputs) {
    const st = fs.statSync(path.join(ROOT, input), { throwIfNoEntry: false });
    if (!st || st.mtimeMs >= manifest.startedMs) return null;
  }
  return entry;
}

async function build() {
  const startedMs = Date.now();
  const esbuild = await import('esbuild');
  const dir = `build-${startedMs}-${process.pid}`;
  const result = await esbuild.build({
    absWorkingDir: ROOT,
    entryPoints: [ENTRY],
    bundle: true,
    // Packages stay imports from node_modules (native addons, optional peers); only our TypeScript is compiled.
    packages: 'external',
    platform: 'node',
    format: 'esm',
    target: 'node20',
    // The web client is imported lazily (topic and groups need only HTTP): its own chunk.
    splitting: true,
    outdir: path.join(CACHE, dir),
    outExtension: { '.js': '.mjs' },
    metafile: true,
    logLevel: 'silent',
  });
  const inputs = Object.keys(result.metafile.inputs).filter((f) => !f.startsWith('node_modules/'));
  const tmp = `${MANIFEST}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, JSON.stringify({ dir, startedMs, inputs }));
  fs.renameSync(tmp, MANIFEST);
  pruneOldBuilds(dir);
  return path.join(CACHE, dir, 'main.mjs');
}

function pruneOldBuilds(keep) {
  for (const name of fs.readdirSync(CACHE)) {
    if (!name.startsWith('build-') || name === keep) continue;
    const at = Number(name.split('-')[1]);
    if (Date.now() - at > OLD_BUILD_MS) fs.rmSync(path.join(CACHE, name), { recursive: true, force: true });
  }
}
