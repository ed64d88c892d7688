/**
 * Runs `tributary connect FILE` as its own process (so a test can SIGKILL
 * it), with its status endpoint on a random loopback port.
 */
import { spawnTributary } from '../../harness/tributary-process.ts';

export interface ConnectProcess {
  /** http://127.0.0.1:PORT serving /v1/connectors and /metrics. */
  statusUrl: string;
  output(): string;
  kill(): Promise<void>;
  stop(): Promise<number | null>;
  status(): Promise<Array<Record<string, unknown>>>;
}

export async function startConnect(file: string, args: string[] = [], env: Record<string, string> = {}): Promise<ConnectProcess> {
  const t = spawnTributary(['connect', file, '--http-port', '0', ...args], env);
  const statusUrl = (await t.waitFor(/connectors status on (http:\/\/[\d.]+:\d+)/, 20_000, 'connect to print its status URL'))[1];
  return {
    statusUrl,
    output: t.output,
    kill: t.kill,
    stop: t.stop,
    status: async () => ((await (await fetch(`${statusUrl}/v1/connectors`)).json()) as { connectors: Array<Record<string, unknown>> }).connectors,
  };
}
