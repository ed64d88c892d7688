/**
 * The per-connection quotas in one object the transport keeps beside each
 * socket: produce rate (bytes and records, two token buckets), open
 * subscriptions, and requests in flight. Every refusal is a typed error the
 * transport answers as an `error` frame (or 429 on HTTP) while the
 * connection stays open; `retryAfterMs` says when to try again.
 */
import { TributaryError } from '../../protocol/errors.ts';
import type { ClientLimits } from './client-limits.ts';
import { ProduceRate } from './token-bucket.ts';

export type QuotaLimits = Pick<ClientLimits, 'produceBytesPerSec' | 'produceBytesBurst' | 'produceEventsPerSec' | 'produceEventsBurst' | 'maxSubscriptionsPerConnection' | 'maxInFlightPerConnection'>;

export class ConnectionQuota {
  private readonly rate: ProduceRate;
  private readonly limits: QuotaLimits;
  private subscriptionCount = 0;
  private inFlightCount = 0;

  constructor(limits: QuotaLimits) {
    this.limits = { ...limits };
    this.rate = new ProduceRate(
      { eventsPerSec: limits.produceEventsPerSec, eventsBurst: limits.produceEventsBurst, bytesPerSec: limits.produceBytesPerSec, bytesBurst: limits.produceBytesBurst },
      'produce',
      'per connection',
    );
  }

  /**
   * Charge a produce of `byteCount` record bytes and `eventCount` records.
   * Null when admitted; RATE_LIMITED with `retryAfterMs` otherwise, and then
   * neither bucket is charged.
   */
  admitProduce(byteCount: number, eventCount: number, nowMs: number): TributaryError | null {
    return this.rate.admit(byteCount, eventCount, nowMs);
  }

  /** Count a request awaiting its reply; TOO_MANY_IN_FLIGHT when at the limit. Pair with `endRequest`. */
  beginRequest(): TributaryError | null {
    if (this.inFlightCount >= this.limits.maxInFlightPerConnection) {
      return new TributaryError('TOO_MANY_IN_FLIGHT', `too many requests in flight: the limit is ${this.limits.maxInFlightPerConnection} per connection; wait for replies`, { retryAfterMs: 100 });
    }
    this.inFlightCount++;
    return null;
  }

  endRequest(): void {
    if (this.inFlightCount <= 0) throw new Error('ConnectionQuota.endRequest without beginRequest');
    this.inFlightCount--;
  }

  /** Count a new subscription; TOO_MANY_SUBSCRIPTIONS when at the limit. Pair with `removeSubscription`. */
  addSubscription(): TributaryError | null {
    if (this.subscriptionCount >= this.limits.maxSubscriptionsPerConnection) {
      return new TributaryError('TOO_MANY_SUBSCRIPTIONS', `too many subscriptions: the limit is ${this.limits.maxSubscriptionsPerConnection} per connection`);
    }
    this.subscriptionCount++;
    return null;
  }

  removeSubscription(): void {
    if (this.subscriptionCount <= 0) throw new Error('ConnectionQuota.removeSubscription without addSubscription');
    this.subscriptionCount--;
  }

  get inFlight(): number {
    return this.inFlightCount;
  }

  get subscriptions(): number {
    return this.subscriptionCount;
  }
}
