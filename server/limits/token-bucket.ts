import { TributaryError } from '../../protocol/errors.ts';

/**
 * A token bucket with no timers: the caller passes the clock. Used per
 * connection for produced bytes and produced events.
 *
 * A request larger than the burst is let through when the bucket is full and
 * leaves it in debt, so one large batch is possible but the average rate
 * still holds; otherwise a batch bigger than the burst could never pass.
 */
export class TokenBucket {
  readonly ratePerSec: number;
  readonly burst: number;
  private tokens: number;
  private lastMs: number | null = null;

  constructor(ratePerSec: number, burst: number) {
    if (!(Number.isFinite(ratePerSec) && ratePerSec > 0)) throw new RangeError(`ratePerSec must be a positive number, got ${ratePerSec}`);
    if (!(Number.isFinite(burst) && burst > 0)) throw new RangeError(`burst must be a positive number, got ${burst}`);
    this.ratePerSec = ratePerSec;
    this.burst = burst;
    this.tokens = burst;
  }

  private refill(nowMs: number): void {
    if (this.lastMs === null) {
      this.lastMs = nowMs;
      return;
    }
    // A clock that steps back must not mint tokens nor take them away.
    const elapsedMs = Math.max(0, nowMs - this.lastMs);
    this.lastMs = Math.max(this.lastMs, nowMs);
    this.tokens = Math.min(this.burst, this.tokens + (elapsedMs * this.ratePerSec) / 1000);
  }

  /**
   * Take `n` tokens at `nowMs`. Returns 0 when taken; otherwise takes nothing
   * and returns the whole milliseconds to wait before the same call succeeds
   * (for Retry-After / retryAfterMs).
   */
  take(n: number, nowMs: number): number {
    const waitMs = this.wait(n, nowMs);
    if (waitMs === 0) this.tokens -= n;
    return waitMs;
  }

  /** What `take(n, nowMs)` would return, taking nothing (to check several buckets before charging any). */
  wait(n: number, nowMs: number): number {
    if (!(Number.isFinite(n) && n >= 0)) throw new RangeError(`take(n) needs a non-negative number, got ${n}`);
    this.refill(nowMs);
    const needed = Math.min(n, this.burst);
    if (this.tokens >= needed) return 0;
    return Math.max(1, Math.ceil(((needed - this.tokens) * 1000) / this.ratePerSec));
  }

  /** Tokens available at `nowMs` (negative while in debt). */
  available(nowMs: number): number {
    this.refill(nowMs);
    return this.tokens;
  }
}

/**
 * A produce rate: one bucket for records and one for bytes, charged together
 * or not at all. `name` and `scope` say in the error what is limited and for
 * whom ("produce", "per connection").
 */
export class ProduceRate {
  private readonly events: TokenBucket;
  private readonly bytes: TokenBucket;

  constructor(
    rates: { eventsPerSec: number; eventsBurst: number; bytesPerSec: number; bytesBurst: number },
    private readonly name: string,
    private readonly scope: string,
  ) {
    this.events = new TokenBucket(rates.eventsPerSec, rates.eventsBurst);
    this.bytes = new TokenBucket(rates.bytesPerSec, rates.bytesBurst);
  }

  /** Null when admitted (both buckets charged); RATE_LIMITED with retryAfterMs otherwise, charging neither. */
  admit(byteCount: number, eventCount: number, nowMs: number): TributaryError | null {
    const waitEventsMs = this.events.wait(eventCount, nowMs);
    if (waitEventsMs > 0) return this.limited('records', this.events.ratePerSec, waitEventsMs);
    const waitBytesMs = this.bytes.wait(byteCount, nowMs);
    if (waitBytesMs > 0) return this.limited('bytes', this.bytes.ratePerSec, waitBytesMs);
    this.events.take(eventCount, nowMs);
    this.bytes.take(byteCount, nowMs);
    return null;
  }

  private limited(unit: string, ratePerSec: number, retryAfterMs: number): TributaryError {
    return new TributaryError('RATE_LIMITED', `${this.name} rate limit exceeded: ${ratePerSec} ${unit}/s ${this.scope}; retry in ${retryAfterMs} ms`, { retryAfterMs });
  }
}
