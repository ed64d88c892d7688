/** What the transport needs from the hub, handed over in one object. */
import type { Authenticator, OriginPolicy } from '../auth/index.ts';
import type { Broker } from '../broker/broker.ts';
import type { HubConfig } from '../config.ts';
import type { Logger } from '../logger.ts';
import type { HubMetrics } from '../metrics.ts';
import type { TransportLimits } from './transport-limits.ts';

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
  limits: TransportLimits;
  /** Who a token belongs to (anonymous for everyone with auth off). */
  authenticator: Authenticator;
  /** The Origin allow-list, for WebSocket upgrades and CORS. */
  origins: OriginPolicy;
  state: HubState;
  /** The connectors run inside the hub (GET /v1/connectors); none without the `connectors` setting. */
  connectors?: ConnectorsControl;
}

interface ConnectorsControl {
  status(): unknown[];
  /** A connector's status after the action, or undefined when there is no such connector. */
  control(name: string, action: 'pause' | 'resume'): unknown;
}
