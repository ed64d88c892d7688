/**
 * The limits hooks, in one place: connections per hub, subscriptions and
 * in-flight requests per connection. Each refusal is a specific, typed error
 * and is counted in /metrics. Rate limits (token buckets, issue 6) plug in
 * here as further checks on `admitRequest`.
 */
import { TributaryError } from '../../protocol/errors.ts';
import { ConnectionLimits } from '../auth/connection-limits.ts';
import type { HubMetrics } from '../metrics.ts';

export interface LimitSettings {
  maxConnections: number;
  maxSubscriptionsPerConnection: number;
  maxInFlightRequestsPerConnection: number;
}

/** What a connection shows the limits. */
export interface LimitedConnection {
  inFlight: number;
  subscriptionCount: number;
}

export class Limits {
  private readonly connections: ConnectionLimits;

  constructor(
    private readonly settings: LimitSettings,
    private readonly metrics: HubMetrics,
  ) {
    // Per-subject limits come with auth; until then the total is the only bound.
    this.connections = new ConnectionLimits({ maxConnections: settings.maxConnections, maxConnectionsPerSubject: settings.maxConnections });
  }

  /** Counts a new connection, or returns why it is refused. Pair with `closeConnection`. */
  openConnection(): TributaryError | null {
    const err = this.connections.tryOpen(null);
    if (err) this.metrics.limitRejections.inc({ limit: 'maxConnections' });
    return err;
  }

  closeConnection(): void {
    this.connections.close(null);
  }

  get openConnections(): number {
    return this.connections.open;
  }

  /** A request frame (one that awaits a reply) may start. */
  admitRequest(conn: LimitedConnection): TributaryError | null {
    if (conn.inFlight >= this.settings.maxInFlightRequestsPerConnection) {
      this.metrics.limitRejections.inc({ limit: 'maxInFlightRequestsPerConnection' });
      return new TributaryError('TOO_MANY_IN_FLIGHT', `more than ${this.settings.maxInFlightRequestsPerConnection} requests in flight on this connection; wait for replies`, {
        limit: this.settings.maxInFlightRequestsPerConnection,
        retryAfterMs: 10,
      });
    }
    return null;
  }

  admitSubscription(conn: LimitedConnection): TributaryError | null {
    if (conn.subscriptionCount >= this.settings.maxSubscriptionsPerConnection) {
      this.metrics.limitRejections.inc({ limit: 'maxSubscriptionsPerConnection' });
      return new TributaryError('TOO_MANY_SUBSCRIPTIONS', `this connection already has ${this.settings.maxSubscriptionsPerConnection} subscriptions`, {
        limit: this.settings.maxSubscriptionsPerConnection,
      });
    }
    return null;
  }
}
