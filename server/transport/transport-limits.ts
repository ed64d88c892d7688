/**
 * The limits and quotas as the transport uses them, over server/limits'
 * building blocks (one source of truth: ClientLimits, the `limits.*` rows of
 * the settings table): connections in total and per token subject
 * (ConnectionLimits), per-connection quotas (ConnectionQuota: produce rate,
 * subscriptions, requests in flight) and HTTP produce rate per subject
 * (SubjectQuotas).
 *
 * Each refusal is a typed error; `tributary_limit_rejections_total{limit}`
 * counts it here under the setting that refused it (which one to raise),
 * and `tributary_refusals_total{reason}` where the error is answered.
 *
 * Produce rate limits apply to authenticated principals only: with auth off
 * there is nobody to account a rate to, and a development hub should not
 * throttle its benchmarks.
 */
import type { TributaryError } from '../../protocol/errors.ts';
import type { Principal } from '../auth/index.ts';
import { ConnectionLimits, ConnectionQuota, ConnectionRate, SubjectQuotas, type ClientLimits } from '../limits/index.ts';
import type { HubMetrics } from '../metrics.ts';

export class TransportLimits {
  private readonly connections: ConnectionLimits;
  private readonly httpProduce: SubjectQuotas;
  private readonly connectionRate: ConnectionRate;

  constructor(
    readonly settings: Readonly<ClientLimits>,
    private readonly metrics: HubMetrics,
  ) {
    this.connections = new ConnectionLimits(settings);
    this.httpProduce = new SubjectQuotas(settings);
    this.connectionRate = new ConnectionRate(settings);
  }

  /** A new WebSocket from `address` may be opened (checked before anything is counted or verified). */
  admitConnection(address: string): TributaryError | null {
    return this.counted(this.connectionRate.admit(address, Date.now()), 'connectionsPerSecPerAddress');
  }

  private counted(err: TributaryError | null, limit: keyof ClientLimits | 'produceRate' | 'httpProduceRate'): TributaryError | null {
    if (err) this.metrics.limitRejections.inc({ limit });
    return err;
  }

  /** Count a new WebSocket before authentication. Pair with `closeConnection(null)`, or `attach` then `closeConnection(subject)`. */
  openConnection(): TributaryError | null {
    return this.counted(this.connections.tryOpen(null), 'maxConnections');
  }

  /** Move an open connection under its authenticated subject; on refusal nothing changes. */
  attach(subject: string): TributaryError | null {
    return this.counted(this.connections.tryAttach(subject), 'maxConnectionsPerSubject');
  }

  closeConnection(subject: string | null): void {
    this.connections.close(subject);
  }

  get openConnections(): number {
    return this.connections.open;
  }

  /** A fresh set of per-connection quotas. */
  quota(): ConnectionQuota {
    return new ConnectionQuota(this.settings);
  }

  /** A request frame may start (pair with quota.endRequest()). */
  beginRequest(quota: ConnectionQuota): TributaryError | null {
    return this.counted(quota.beginRequest(), 'maxInFlightPerConnection');
  }

  /** A subscription may start (pair with quota.removeSubscription()). */
  addSubscription(quota: ConnectionQuota): TributaryError | null {
    return this.counted(quota.addSubscription(), 'maxSubscriptionsPerConnection');
  }

  /** Charge a WebSocket produce of `byteCount` frame bytes and `eventCount` records. */
  admitProduce(quota: ConnectionQuota, principal: Principal, byteCount: number, eventCount: number): TributaryError | null {
    if (principal.anonymous) return null;
    return this.counted(quota.admitProduce(byteCount, eventCount, Date.now()), 'produceRate');
  }

  /** Charge an HTTP produce to the principal's subject. */
  admitHttpProduce(principal: Principal, byteCount: number, eventCount: number): TributaryError | null {
    if (principal.anonymous) return null;
    return this.counted(this.httpProduce.admitProduce(principal.subject, byteCount, eventCount, Date.now()), 'httpProduceRate');
  }

  /** Periodic housekeeping (the transport's sweep timer). */
  sweep(nowMs: number): void {
    this.httpProduce.sweep(nowMs);
    this.connectionRate.sweep(nowMs);
  }
}
