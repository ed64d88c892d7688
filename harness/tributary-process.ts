/**
 * A `bin/tributary.mjs` command as a child process of a test or a bench: its
 * output kept, a line it prints waited for, and stopped with SIGTERM or
 * SIGKILL. harness/hub.ts (`serve`) and test/helpers/connect.ts (`connect`)
 * stand on it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const BIN = path.join(ROOT, 'bin/tributary.mjs');

export interface TributaryProcess {
  proc: ChildProcess;
  /** Resolves with the exit code when the process has exited. */
  exited: Promise<number | null>;
  /** Everything the process printed so far (stdout and stderr). */
  output(): string;
  /**
   * The first match of `pattern` in the output; rejects with the output when
   * the process exits first or `timeoutMs` passes (`what` names the wait).
   */
  waitFor(pattern: RegExp, timeoutMs: number, what: string): Promise<RegExpExecArray>;
  /** SIGKILL and wait for the exit. */
  kill(): Promise<void>;
  /** SIGTERM and wait for the exit. */
  stop(): Promise<number | null>;
}

export function spawnTributary(args: string[], env: Record<string, string> = {}): TributaryProcess {
  const proc = spawn(process.execPath, [BIN, ...args], {
    cwd: ROOT,
    env: { ...process.env, TRIBUTARY_LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  proc.stdout!.on('data', (d) => (out += d));
  proc.stderr!.on('data', (d) => (out += d));
  // 'close' (after stdout and stderr ended), not 'exit': a line printed just before exiting is read first.
  const exited = new Promise<number | null>((resolve) => proc.once('close', (code) => resolve(code)));
  const running = (): boolean => proc.exitCode === null && proc.signalCode === null;
  return {
    proc,
    exited,
    output: () => out,
    waitFor: (pattern, timeoutMs, what) =>
      new Promise<RegExpExecArray>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`${what}: not within ${timeoutMs / 1000} s:\n${out}`)), timeoutMs);
        const check = (): void => {
          const m = pattern.exec(out);
          if (!m) return;
          clearTimeout(timer);
          proc.stdout!.off('data', check);
          proc.stderr!.off('data', check);
          resolve(m);
        };
        proc.stdout!.on('data', check);
        proc.stderr!.on('data', check);
        check();
        void exited.then((code) => {
          clearTimeout(timer);
          reject(new Error(`${what}: the process exited with ${code} first:\n${out}`));
        });
      }),
    kill: async () => {
      if (running()) proc.kill('SIGKILL');
      await exited;
    },
    stop: async () => {
      if (running()) proc.kill('SIGTERM');
      return exited;
    },
  };
}
