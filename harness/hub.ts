/**
 * Starts a real hub process (`bin/tributary.mjs serve`) on a random loopback
 * port with its own data directory, and cleans up after it.
 */
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnTributary } from './tributary-process.ts';
/**
 * How long a hub may take to listen, and then to be healthy. An idle machine
 * needs about a second; on a shared 2-core machine under load 30 starting a
 * hub took over 20 s, which failed whole files. Below Vitest's 60 s hook timeout,
 * so that a hub that never starts fails with what it printed.
 */
const START_TIMEOUT_MS = 45_000;

export interface HubOptions {
  /** Reuse a data directory (for restarts); a fresh temp dir otherwise. */
  dataDir?: string;
  /** Extra CLI flags for `tributary serve`. */
  args?: string[];
  env?: Record<string, string>;
  /** Wait for /healthz 200 before resolving (default true; give false for a TLS hub, whose certificate fetch does not trust). */
  waitHealthy?: boolean;
  port?: number;
}

export interface Hub {
  port: number;
  url: string; // http(s)://127.0.0.1:PORT
  wsUrl: string; // ws(s)://127.0.0.1:PORT/v1/ws
  dataDir: string;
  proc: ChildProcess;
  /** Everything the process printed so far. */
  output(): string;
  /** SIGKILL, no cleanup of the data dir. */
  kill(): Promise<void>;
  /** SIGTERM and wait for exit. */
  stop(): Promise<number | null>;
  /** Remove the data dir (after stop/kill). */
  cleanup(): void;
}

export function tempDir(prefix = 'tributary-test-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

export async function startHub(opts: HubOptions = {}): Promise<Hub> {
  const dataDir = opts.dataDir ?? tempDir();
  const t = spawnTributary(['serve', '--host', '127.0.0.1', '--port', String(opts.port ?? 0), '--data', dataDir, ...(opts.args ?? [])], opts.env);
  const { exited, output: out } = t;
  const m = await t.waitFor(/listening on (https?):\/\/[^:]+:(\d+)/, START_TIMEOUT_MS, 'the hub to print its URL');
  const tls = m[1] === 'https';
  const port = Number(m[2]);
  const url = `${tls ? 'https' : 'http'}://127.0.0.1:${port}`;
  const hub: Hub = {
    port,
    url,
    wsUrl: `${tls ? 'wss' : 'ws'}://127.0.0.1:${port}/v1/ws`,
    dataDir,
    proc: t.proc,
    output: out,
    kill: t.kill,
    stop: t.stop,
    cleanup: () => fs.rmSync(dataDir, { recursive: true, force: true }),
  };
  if (opts.waitHealthy !== false) {
    // A hub that exits after listening (storage refused, lock held) fails at once, with what it printed.
    let settled = false;
    await Promise.race([
      waitHealthy(url).finally(() => (settled = true)),
      exited.then((code) => {
        if (!settled) throw new Error(`hub exited with ${code} before it was healthy:\n${out()}`);
      }),
    ]);
  }
  return hub;
}

export async function waitHealthy(url: string, timeoutMs = START_TIMEOUT_MS): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const res = await fetch(`${url}/healthz`);
      if (res.status === 200) return;
    } catch {
      // not up yet
    }
    if (Date.now() > deadline) throw new Error(`hub at ${url} not healthy within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
