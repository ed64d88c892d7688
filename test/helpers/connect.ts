/**
 * Runs `tributary connect FILE` as its own process (so a test can SIGKILL
 * it), with its status endpoint on a random loopback port.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const BIN = path.join(ROOT, 'bin/tributary.mjs');

export interface ConnectProcess {
  /** http://127.0.0.1:PORT serving /v1/connectors and /metrics. */
  statusUrl: string;
  output(): string;
  kill(): Promise<void>;
  stop(): Promise<number | null>;
  status(): Promise<Array<Record<string, unknown>>>;
}

export async function startConnect(file: string, args: string[] = [], env: Record<string, string> = {}): Promise<ConnectProcess> {
  const proc = spawn(process.execPath, [BIN, 'connect', file, '--http-port', '0', ...args], {
    cwd: ROOT,
    env: { ...process.env, TRIBUTARY_LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  proc.stdout!.on('data', (d) => (out += d));
  proc.stderr!.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  const statusUrl = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`connect did not print its status URL within 20 s:\n${out}`)), 20_000);
    const check = (): void => {
      const m = /connectors status on (http:\/\/[\d.]+:\d+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    };
    proc.stdout!.on('data', check);
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`connect exited with ${code}:\n${out}`));
    });
  });
  return {
    statusUrl,
    output: () => out,
    kill: async () => {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
      await exited;
    },
    stop: async () => {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
      return exited;
    },
    status: async () => ((await (await fetch(`${statusUrl}/v1/connectors`)).json()) as { connectors: Array<Record<string, unknown>> }).connectors,
  };
}
