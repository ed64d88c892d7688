/**
 * Connectors inside the hub (`--connectors FILE`): the same runtime as
 * `tributary connect FILE`, connected to this hub over loopback like any
 * other client, so a connector sees exactly what an external one would
 * (auth, limits, the public protocol). Started once storage has recovered;
 * stopped before the hub closes its connections.
 */
import { readConnectFile } from '../connectors/config.ts';
import { ConnectorRuntime } from '../connectors/runtime.ts';
import type { ConnectorStatus } from '../connectors/task.ts';
import type { HubConfig } from './config.ts';
import type { Logger } from './logger.ts';
import type { HubMetrics } from './metrics.ts';

export interface InHubConnectors {
  status(): ConnectorStatus[];
  /** Pause or resume a connector by name; its status, or undefined when unknown. */
  control(name: string, action: 'pause' | 'resume'): ConnectorStatus | undefined;
  stop(): Promise<void>;
}

/** Reads and checks the file now (a bad file stops start-up); connects once `ready` resolves. */
export function createInHubConnectors(cfg: HubConfig, port: number, log: Logger, metrics: HubMetrics): InHubConnectors & { start(ready: Promise<void>): void } {
  const file = readConnectFile(cfg.connectors!);
  const host = cfg.host === '0.0.0.0' || cfg.host === '::' ? '127.0.0.1' : cfg.host.includes(':') ? `[${cfg.host}]` : cfg.host;
  const url = `${cfg.tls ? 'wss' : 'ws'}://${host}:${port}/v1/ws`;
  const runtime = new ConnectorRuntime(file, { url, log: log.child({ component: 'connectors' }) });
  metrics.addRegistry(runtime.registry);
  let started: Promise<void> = Promise.resolve();
  return {
    start(ready) {
      started = ready.then(() => runtime.start()).catch((err: unknown) => log.error({ err }, 'connectors did not start'));
    },
    status: () => runtime.status(),
    control: (name, action) => runtime.control(name, action),
    async stop() {
      await runtime.stop();
      await started;
    },
  };
}
