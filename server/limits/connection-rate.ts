/**
 * New WebSocket connections per second, per remote address: a token bucket
 * for each address that opened a connection lately. A client that reconnects
 * in a tight loop (or a script opening sockets) is refused with RATE_LIMITED
 * before any work is done for it, while other addresses connect as usual.
 *
 * Bounded memory: an address whose bucket has refilled is forgotten (as if
 * kept), `sweep` does that on the transport's timer, and at most
 * `maxTrackedAddresses` are tracked: past that the least recently used go.
 */
import { TributaryError } from '../../protocol/errors.ts';
import type { ClientLimits } from './client-limits.ts';
import { TokenBucket } from './token-bucket.ts';

export type ConnectionRateLimits = Pick<ClientLimits, 'connectionsPerSecPerAddress' | 'connectionsBurstPerAddress'>;

export class ConnectionRate {
  private readonly buckets = new Map<string, { bucket: TokenBucket; lastUsedMs: number }>();
  private readonly refillMs: number;

  constructor(
    private readonly limits: ConnectionRateLimits,
    private readonly maxTrackedAddresses = 100_000,
  ) {
    this.refillMs = Math.ceil((1000 * limits.connectionsBurstPerAddress) / limits.connectionsPerSecPerAddress);
  }

  /** Charge one new connection to `address`: null when allowed, RATE_LIMITED with retryAfterMs otherwise. */
  admit(address: string, nowMs: number): TributaryError | null {
    let e = this.buckets.get(address);
    if (e)
      this.buckets.delete(address); // re-inserted below: Map order is then least recently used first
    else e = { bucket: new TokenBucket(this.limits.connectionsPerSecPerAddress, this.limits.connectionsBurstPerAddress), lastUsedMs: nowMs };
    e.lastUsedMs = nowMs;
    this.buckets.set(address, e);
    if (this.buckets.size > this.maxTrackedAddresses) this.buckets.delete(this.buckets.keys().next().value as string);
    const waitMs = e.bucket.wait(1, nowMs);
    if (waitMs > 0) {
      return new TributaryError('RATE_LIMITED', `too many new connections from this address: the limit is ${this.limits.connectionsPerSecPerAddress}/s; retry in ${waitMs} ms`, {
        retryAfterMs: waitMs,
      });
    }
    e.bucket.take(1, nowMs);
    return null;
  }

  /** Forget addresses whose buckets are full again. */
  sweep(nowMs: number): void {
    for (const [address, e] of this.buckets) if (nowMs - e.lastUsedMs > this.refillMs) this.buckets.delete(address);
  }

  get tracked(): number {
    return this.buckets.size;
  }
}
