/** What the transport needs from the hub, handed over in one object. */
import type { Broker } from '../broker/broker.ts';
import type { HubConfig } from '../config.ts';
import type { Logger } from '../logger.ts';
import type { HubMetrics } from '../metrics.ts';
import type { Limits } from './limits.ts';

/** The hub's lifecycle as the transport sees it. */
export interface HubState {
  /** Recovery finished: serve requests (/healthz 200). */
  ready: boolean;
  /** SIGTERM/SIGINT received: refuse new work. */
  shuttingDown: boolean;
}

export interface TransportDeps {
  broker: Broker;
  config: HubConfig;
  metrics: HubMetrics;
  log: Logger;
  limits: Limits;
  state: HubState;
}
