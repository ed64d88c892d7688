/**
 * Every process and temp directory the harness starts, in one registry, so
 * that all of them are stopped and removed on success, on error and on
 * SIGINT/SIGTERM. Children run in their own process group (detached) and are
 * stopped by their own pid, never by name.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const BENCH = path.join(ROOT, 'bench');

/** The fd limit asked for in children that hold many sockets (the hard limit caps it). */
const WANT_NOFILE = 65_536;
const STOP_GRACE_MS = 3_000;
const OUTPUT_KEEP_CHARS = 64 * 1024;

export interface Managed {
  name: string;
  proc: ChildProcess;
  pid: number;
  /** The last OUTPUT_KEEP_CHARS characters the process printed (stdout and stderr). */
  output(): string;
  exited: Promise<number | null>;
  stop(): Promise<void>;
}

const running = new Set<Managed>();
const tempDirs = new Set<string>();

export function makeTempDir(prefix: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `tributary-bench-${prefix}-`));
  tempDirs.add(dir);
  return dir;
}

export function removeTempDir(dir: string): void {
  fs.rmSync(dir, { recursive: true, force: true });
  tempDirs.delete(dir);
}

/** Quotes a word for bash. */
const sh = (w: string): string => `'${w.replace(/'/g, `'\\''`)}'`;

export interface SpawnOptions {
  /** Raise the soft fd limit first (through a bash wrapper that then execs the command). */
  raiseFdLimit?: boolean;
  env?: Record<string, string>;
  cwd?: string;
  /** Called with each chunk the process prints. */
  onOutput?: (chunk: string) => void;
}

export function spawnManaged(name: string, cmd: string, args: string[], opts: SpawnOptions = {}): Managed {
  let file = cmd;
  let argv = args;
  if (opts.raiseFdLimit) {
    // `exec` keeps the pid: the pid we hold is the command's own.
    const script = `ulimit -n ${WANT_NOFILE} 2>/dev/null || ulimit -n "$(ulimit -Hn)"; exec ${[cmd, ...args].map(sh).join(' ')}`;
    file = 'bash';
    argv = ['-c', script];
  }
  const proc = spawn(file, argv, {
    cwd: opts.cwd ?? ROOT,
    env: { ...process.env, ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  if (proc.pid === undefined) throw new Error(`could not start ${name} (${cmd})`);
  let out = '';
  const onData = (d: Buffer): void => {
    const s = d.toString();
    out = (out + s).slice(-OUTPUT_KEEP_CHARS);
    opts.onOutput?.(s);
  };
  proc.stdout!.on('data', onData);
  proc.stderr!.on('data', onData);
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code, signal) => resolve(code ?? (signal ? -1 : null))));
  const m: Managed = {
    name,
    proc,
    pid: proc.pid,
    output: () => out,
    exited,
    stop: async () => {
      if (proc.exitCode === null && proc.signalCode === null) {
        signalGroup(proc.pid!, 'SIGTERM');
        const timer = setTimeout(() => signalGroup(proc.pid!, 'SIGKILL'), STOP_GRACE_MS);
        await exited;
        clearTimeout(timer);
      }
      running.delete(m);
    },
  };
  running.add(m);
  void exited.then(() => running.delete(m));
  return m;
}

function signalGroup(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(-pid, sig); // the group we created with detached: true
  } catch {
    try {
      process.kill(pid, sig);
    } catch {
      // already gone
    }
  }
}

/** Waits until `re` matches the process output; returns the match. */
export function waitForOutput(m: Managed, re: RegExp, timeoutMs = 20_000): Promise<RegExpExecArray> {
  return new Promise((resolve, reject) => {
    const check = (): boolean => {
      const hit = re.exec(m.output());
      if (hit) {
        cleanup();
        resolve(hit);
        return true;
      }
      return false;
    };
    const onData = (): void => void check();
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`${m.name}: no ${re} within ${timeoutMs} ms; output:\n${m.output().slice(-2000)}`));
    }, timeoutMs);
    const cleanup = (): void => {
      clearTimeout(timer);
      m.proc.stdout!.off('data', onData);
      m.proc.stderr!.off('data', onData);
    };
    m.proc.stdout!.on('data', onData);
    m.proc.stderr!.on('data', onData);
    void m.exited.then((code) => {
      if (!check()) {
        cleanup();
        reject(new Error(`${m.name} exited (${code}) before ${re}; output:\n${m.output().slice(-2000)}`));
      }
    });
    check();
  });
}

/** A loopback port that was free a moment ago (for servers that cannot listen on port 0). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

/** Resolves once a TCP connect to 127.0.0.1:port succeeds. */
export async function waitForPort(port: number, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1');
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`nothing listens on 127.0.0.1:${port} after ${timeoutMs} ms`);
    await sleep(50);
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Stops everything still running and removes every temp dir. Safe to call twice. */
export async function stopAll(): Promise<void> {
  await Promise.all([...running].map((m) => m.stop()));
  for (const dir of [...tempDirs]) removeTempDir(dir);
}

/** Synchronous last resort for process exit: SIGKILL the groups, remove the dirs. */
function killAllNow(): void {
  for (const m of running) signalGroup(m.pid, 'SIGKILL');
  running.clear();
  for (const dir of [...tempDirs]) {
    try {
      removeTempDir(dir);
    } catch {
      // best effort at exit
    }
  }
}

let installed = false;
/** Stop children on SIGINT/SIGTERM and on any exit of the harness. */
export function installCleanupHandlers(): void {
  if (installed) return;
  installed = true;
  process.once('exit', killAllNow);
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      process.stderr.write(`\n${sig}: stopping everything the benchmark started…\n`);
      void stopAll().finally(() => process.exit(130));
    });
  }
}
