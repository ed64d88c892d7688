/**
 * Counts open connections, in total and per token subject, and refuses the
 * one over either limit with TOO_MANY_CONNECTIONS (429, retriable).
 *
 * A WebSocket is counted from its upgrade, before it has authenticated
 * (subject null), so the total also bounds connections that never send a
 * token; `tryAttach` moves it under its subject once the token is verified.
 * Anonymous connections (auth off) stay under null: the per-subject limit
 * would otherwise make them share one budget.
 */
import { TributaryError } from '../../protocol/errors.ts';

export interface ConnectionLimitsConfig {
  maxConnections: number;
  maxConnectionsPerSubject: number;
}

export class ConnectionLimits {
  private total = 0;
  private readonly perSubject = new Map<string, number>();
  private readonly max: ConnectionLimitsConfig;

  constructor(limits: ConnectionLimitsConfig) {
    this.max = { maxConnections: limits.maxConnections, maxConnectionsPerSubject: limits.maxConnectionsPerSubject };
  }

  /** Count a new connection, under `subject` when already known. Null when allowed, else the error to answer with. */
  tryOpen(subject: string | null): TributaryError | null {
    if (this.total >= this.max.maxConnections) {
      return new TributaryError('TOO_MANY_CONNECTIONS', `too many connections: the hub holds its limit of ${this.max.maxConnections}`, { retryAfterMs: 1000 });
    }
    if (subject !== null) {
      const err = this.checkSubject(subject);
      if (err) return err;
      this.perSubject.set(subject, (this.perSubject.get(subject) ?? 0) + 1);
    }
    this.total++;
    return null;
  }

  /** Move a connection opened with subject null under `subject`. On error nothing changes (the caller closes it). */
  tryAttach(subject: string): TributaryError | null {
    const err = this.checkSubject(subject);
    if (err) return err;
    this.perSubject.set(subject, (this.perSubject.get(subject) ?? 0) + 1);
    return null;
  }

  /** Forget a connection counted under `subject` (null if it never attached). */
  close(subject: string | null): void {
    if (this.total <= 0) throw new Error('ConnectionLimits.close without a matching open');
    if (subject !== null) {
      const n = this.perSubject.get(subject);
      if (n === undefined) throw new Error('ConnectionLimits.close for a subject with no open connection');
      if (n <= 1)
        this.perSubject.delete(subject); // no entry per subject that ever connected
      else this.perSubject.set(subject, n - 1);
    }
    this.total--;
  }

  get open(): number {
    return this.total;
  }

  openFor(subject: string): number {
    return this.perSubject.get(subject) ?? 0;
  }

  private checkSubject(subject: string): TributaryError | null {
    if ((this.perSubject.get(subject) ?? 0) >= this.max.maxConnectionsPerSubject) {
      return new TributaryError('TOO_MANY_CONNECTIONS', `too many connections for this subject: its limit is ${this.max.maxConnectionsPerSubject}`, { retryAfterMs: 1000 });
    }
    return null;
  }
}
