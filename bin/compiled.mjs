// Every `tributary` command compiled once into plain JavaScript by esbuild
// and run from there, rebuilt when one of its source files changed. Through
// tsx's loader (a hooks thread, every module resolved, transpiled and its
// cache checked through it) a start cost ~0.8 s of CPU for the client
// commands and ~1.5 s for the hub, 3–7 s on a busy 2-core machine; from the
// compiled files a fraction of that. That counts: each client command is a
// process start, and the tests start a hub a few hundred times.
//
// One target per top-level command (TARGETS), each kept in
// node_modules/.cache/tributary-<target>/: build-*/ directories and a
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
/**
 * What each command compiles from. The client commands import the web client lazily (topic and groups
 * need only HTTP): its own chunk, hence splitting.
 */
const TARGETS = {
  cli: { entry: 'cli/main.ts', splitting: true },
  serve: { entry: 'server/cli.ts', splitting: false },
  connect: { entry: 'connectors/cli.ts', splitting: false },
};
/** A lock older than this was left by a builder that died. */
const STALE_LOCK_MS = 60_000;
const WAIT_FOR_BUILD_MS = 30_000;
/** Old builds are removed after this long (a process started from one may still load its lazy chunks meanwhile). */
const OLD_BUILD_MS = 24 * 60 * 60 * 1000;

/** Path of the compiled entry of `target` (a TARGETS name), building it first when missing or stale; null when it cannot be built. */
export async function compiledEntry(target) {
  const spec = TARGETS[target];
  const cache = path.join(ROOT, 'node_modules', '.cache', `tributary-${target}`);
  const at = {
    ...spec,
    cache,
    manifest: path.join(cache, 'manifest.json'),
    // Held by the process that builds: the others (a test file starting several commands at once) wait for its build.
    lock: path.join(cache, 'build.lock'),
  };
  try {
    const current = freshBuild(at);
    if (current) return current;
    fs.mkdirSync(cache, { recursive: true });
    if (!takeLock(at.lock)) {
      const built = await waitForBuild(at);
      if (built) return built;
    }
    try {
      return await build(at);
    } finally {
      fs.rmSync(at.lock, { force: true });
    }
  } catch {
    return null;
  }
}

function takeLock(lock) {
  try {
    fs.closeSync(fs.openSync(lock, 'wx'));
    return true;
  } catch {
    const st = fs.statSync(lock, { throwIfNoEntry: false });
    if (st && Date.now() - st.mtimeMs > STALE_LOCK_MS) {
      fs.rmSync(lock, { force: true });
      return takeLock(lock);
    }
    return false;
  }
}

/** Another process is building: its result, or null when it takes too long (then this one builds too). */
async function waitForBuild(at) {
  const deadline = Date.now() + WAIT_FOR_BUILD_MS;
  while (Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100));
    const built = freshBuild(at);
    if (built) return built;
    if (!fs.existsSync(at.lock)) return freshBuild(at);
  }
  return null;
}

function freshBuild(at) {
  let manifest;
  try {
    manifest = JSON.parse(fs.readFileSync(at.manifest, 'utf8'));
  } catch {
    return null;
  }
  const entry = path.join(at.cache, manifest.dir, 'main.mjs');
  if (!fs.existsSync(entry)) return null;
  for (const input of manifest.inputs) {
    const st = fs.statSync(path.join(ROOT, input), { throwIfNoEntry: false });
    if (!st || st.mtimeMs >= manifest.startedMs) return null;
  }
  return entry;
}

async function build(at) {
  const startedMs = Date.now();
  const esbuild = await import('esbuild');
  const dir = `build-${startedMs}-${process.pid}`;
  const result = await esbuild.build({
    absWorkingDir: ROOT,
    entryPoints: { main: at.entry },
    bundle: true,
    // Packages stay imports from node_modules (native addons, optional peers); only our TypeScript is compiled.
    packages: 'external',
    platform: 'node',
    format: 'esm',
    target: 'node20',
    splitting: at.splitting,
    outdir: path.join(at.cache, dir),
    outExtension: { '.js': '.mjs' },
    metafile: true,
    logLevel: 'silent',
  });
  const inputs = Object.keys(result.metafile.inputs).filter((f) => !f.startsWith('node_modules/'));
  const tmp = `${at.manifest}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, JSON.stringify({ dir, startedMs, inputs }));
  fs.renameSync(tmp, at.manifest);
  pruneOldBuilds(at.cache, dir);
  return path.join(at.cache, dir, 'main.mjs');
}

function pruneOldBuilds(cache, keep) {
  for (const name of fs.readdirSync(cache)) {
    if (!name.startsWith('build-') || name === keep) continue;
    const at = Number(name.split('-')[1]);
    if (Date.now() - at > OLD_BUILD_MS) fs.rmSync(path.join(cache, name), { recursive: true, force: true });
  }
}
