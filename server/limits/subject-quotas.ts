/**
 * Produce rate limits for HTTP, per token subject. HTTP requests have no
 * connection to hang a bucket on, and one client may spread its requests
 * over many keep-alive sockets, so every request of a subject draws from
 * the same pair of buckets (bytes and records).
 *
 * Bounded memory: a subject's buckets are forgotten once they would be full
 * again (idle for a whole refill), which is indistinguishable from keeping
 * them; `sweep` does that and is called on a timer by the transport.
 */
import { TributaryError } from '../../protocol/errors.ts';
import type { ClientLimits } from './client-limits.ts';
import { ProduceRate } from './token-bucket.ts';

export type SubjectRateLimits = Pick<ClientLimits, 'httpProduceBytesPerSec' | 'httpProduceBytesBurst' | 'httpProduceEventsPerSec' | 'httpProduceEventsBurst'>;

interface Entry {
  rate: ProduceRate;
  lastUsedMs: number;
}

export class SubjectQuotas {
  private readonly entries = new Map<string, Entry>();
  private readonly limits: SubjectRateLimits;
  /** After this long unused, an entry's buckets are full again and it can be dropped. */
  private readonly refillMs: number;

  constructor(limits: SubjectRateLimits) {
    this.limits = { ...limits };
    this.refillMs = Math.ceil(1000 * Math.max(limits.httpProduceBytesBurst / limits.httpProduceBytesPerSec, limits.httpProduceEventsBurst / limits.httpProduceEventsPerSec));
  }

  /** Charge `byteCount` bytes and `eventCount` records to `subject`; RATE_LIMITED with retryAfterMs when over, charging nothing. */
  admitProduce(subject: string, byteCount: number, eventCount: number, nowMs: number): TributaryError | null {
    let e = this.entries.get(subject);
    if (!e) {
      const l = this.limits;
      e = {
        rate: new ProduceRate(
          { eventsPerSec: l.httpProduceEventsPerSec, eventsBurst: l.httpProduceEventsBurst, bytesPerSec: l.httpProduceBytesPerSec, bytesBurst: l.httpProduceBytesBurst },
          'HTTP produce',
          'per token subject',
        ),
        lastUsedMs: nowMs,
      };
      this.entries.set(subject, e);
    }
    e.lastUsedMs = nowMs;
    return e.rate.admit(byteCount, eventCount, nowMs);
  }

  /** Forget subjects whose buckets have refilled. */
  sweep(nowMs: number): void {
    for (const [subject, e] of this.entries) if (nowMs - e.lastUsedMs > this.refillMs) this.entries.delete(subject);
  }

  get size(): number {
    return this.entries.size;
  }
}
