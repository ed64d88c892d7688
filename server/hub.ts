/**
 * The hub: storage, broker and transport wired together, with the
 * lifecycle around them.
 *
 * Start-up listens first (so /livez answers and /healthz says 503 while the
 * engine recovers), then opens storage (recovery: torn tails truncated,
 * indexes rebuilt), then serves. Shutdown stops accepting, refuses new work,
 * waits for in-flight appends (bounded by shutdownTimeoutMs), closes the
 * connections, and closes storage (flush, fsync, lock released).
 */
import { OriginPolicy, createAuthenticator } from './auth/index.ts';
import { engineServers, type HubConfig } from './config.ts';
import { Broker } from './broker/broker.ts';
import type { Logger } from './logger.ts';
import { createInHubConnectors, type InHubConnectors } from './connectors-runner.ts';
import { HubMetrics } from './metrics.ts';
import { FileLogStore } from './storage/file-log-store.ts';
import { JetStreamLogStore } from './storage/jetstream/jetstream-log-store.ts';
import type { LogStore } from './storage/log-store.ts';
import { nativeCrc32c } from './storage/native-crc.ts';
import { TransportLimits } from './transport/transport-limits.ts';
import { Transport } from './transport/server.ts';
import type { HubState } from './transport/transport-deps.ts';

export interface StartedHub {
  /** The port actually bound (differs from the configured one when that was 0). */
  port: number;
  url: string;
  /** Resolves once recovery has finished and the hub serves. */
  ready: Promise<void>;
  stop(): Promise<void>;
}

function createStore(cfg: HubConfig, log: Logger): LogStore {
  if (cfg.engine) {
    // Scale-out: the log lives in JetStream and this hub keeps no state of its own.
    return new JetStreamLogStore({
      servers: engineServers(cfg.engine),
      defaults: cfg.topic,
      crc: nativeCrc32c,
      maxProducersPerPartition: cfg.storage.maxProducersPerPartition,
      mirror: cfg.engineMirror.length > 0 ? cfg.engineMirror : undefined,
      log: log.child({ component: 'storage', engine: 'jetstream' }),
    });
  }
  return new FileLogStore({
    dataDir: cfg.data,
    defaults: cfg.topic,
    crc: nativeCrc32c,
    ...cfg.storage,
    log: log.child({ component: 'storage' }),
  });
}

export async function startHub(cfg: HubConfig, log: Logger, store: LogStore = createStore(cfg, log)): Promise<StartedHub> {
  const state: HubState = { ready: false, shuttingDown: false };
  let broker: Broker | null = null;
  const metrics = new HubMetrics({
    storageBytes: () => (broker && state.ready ? broker.storageBytes() : 0),
    topicCount: () => (state.ready ? store.listTopics().length : 0),
    storageProblems: () => store.storageProblems?.().length ?? 0,
  });
  broker = new Broker(store, { ...cfg, crc: nativeCrc32c }, metrics);
  const limits = new TransportLimits(cfg.limits, metrics);
  const authenticator = createAuthenticator(cfg.auth);
  const origins = new OriginPolicy(cfg.auth.allowedOrigins, authenticator.required, {}, (origin, message) => log.warn({ origin }, message));
  let connectors: InHubConnectors | null = null;
  const transport = new Transport({
    broker,
    config: cfg,
    metrics,
    log,
    limits,
    authenticator,
    origins,
    state,
    connectors: { status: () => connectors?.status() ?? [], control: (name, action) => connectors?.control(name, action) },
  });
  log.info({ transport: transport.loaded.description, native: transport.loaded.native }, 'transport');
  if (!transport.loaded.native) log.warn('running on the pure-Node uWebSockets.js fallback (allowed by configuration): expect a fraction of the native throughput');

  const port = await transport.listen(cfg.host, cfg.port);
  const url = `${cfg.tls ? 'https' : 'http'}://${cfg.host.includes(':') ? `[${cfg.host}]` : cfg.host}:${port}`;

  if (cfg.connectors) {
    const c = createInHubConnectors(cfg, port, log, metrics);
    connectors = c;
    // Started below, once storage serves.
    queueMicrotask(() => c.start(ready));
  }

  const ready = (async () => {
    if (cfg.testRecoveryDelayMs > 0) await new Promise((r) => setTimeout(r, cfg.testRecoveryDelayMs));
    const started = Date.now();
    await store.open();
    await broker.open();
    state.ready = !state.shuttingDown;
    log.info({ ms: Date.now() - started, topics: store.listTopics().length }, 'storage recovered; serving');
  })();

  let stopping: Promise<void> | null = null;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      // Connectors write through this hub: stop them while it still serves their last writes.
      await connectors?.stop().catch((err: unknown) => log.warn({ err }, 'connectors did not stop cleanly'));
      state.shuttingDown = true;
      state.ready = false;
      transport.stopAccepting();
      await ready.catch(() => undefined);
      const drained = await broker.inFlight.drained(cfg.shutdownTimeoutMs);
      if (!drained) log.warn({ inFlight: broker.inFlight.size }, 'shutdown timeout: closing with appends in flight (they are not acknowledged)');
      // Let the replies of the last appends reach their connections' queues before closing them.
      await new Promise((r) => setImmediate(r));
      broker.close();
      transport.closeConnections();
      await store.close();
      log.info('storage closed; bye');
    })();
    return stopping;
  };

  return { port, url, ready, stop };
}
