import { describe, expect, it } from 'vitest';
import { ConnectionLimits, ConnectionQuota, TokenBucket } from '../../server/limits/index.ts';

describe('TokenBucket', () => {
  it('allows a burst, then refills at the rate and says how long to wait', () => {
    const b = new TokenBucket(100, 200); // 100/s, burst 200
    expect(b.take(150, 0)).toBe(0);
    expect(b.take(50, 0)).toBe(0);
    // empty: 10 tokens need 100 ms
    expect(b.take(10, 0)).toBe(100);
    expect(b.take(10, 50)).toBe(50);
    expect(b.take(10, 100)).toBe(0);
    // never refills beyond the burst
    expect(b.available(1_000_000)).toBe(200);
  });

  it('a refused take takes nothing', () => {
    const b = new TokenBucket(10, 10);
    expect(b.take(10, 0)).toBe(0);
    expect(b.take(5, 0)).toBe(500);
    expect(b.take(5, 0)).toBe(500);
    expect(b.take(5, 500)).toBe(0);
  });

  it('lets a request larger than the burst through from a full bucket, then makes the debt be paid', () => {
    const b = new TokenBucket(1000, 1000);
    expect(b.take(3000, 0)).toBe(0); // allowed, bucket at -2000
    expect(b.available(0)).toBe(-2000);
    expect(b.take(1, 0)).toBe(2001);
    expect(b.take(3000, 2999)).toBe(1); // needs the bucket full again (1000 tokens) at 3000 ms
    expect(b.take(3000, 3000)).toBe(0);
  });

  it('average rate holds under a steady stream of requests', () => {
    const b = new TokenBucket(1000, 100);
    let taken = 0;
    for (let t = 0; t <= 10_000; t++) if (b.take(10, t) === 0) taken += 10;
    // 10 s at 1000/s plus the initial burst
    expect(taken).toBeGreaterThanOrEqual(10_000);
    expect(taken).toBeLessThanOrEqual(10_100);
  });

  it('ignores a clock that steps backwards', () => {
    const b = new TokenBucket(10, 10);
    expect(b.take(10, 5_000)).toBe(0);
    expect(b.take(1, 1_000)).toBe(100);
    expect(b.take(1, 5_100)).toBe(0);
  });

  it('refuses nonsense settings', () => {
    expect(() => new TokenBucket(0, 10)).toThrow(RangeError);
    expect(() => new TokenBucket(10, Infinity)).toThrow(RangeError);
    expect(() => new TokenBucket(10, 10).take(-1, 0)).toThrow(RangeError);
  });
});

describe('ConnectionLimits', () => {
  it('refuses the connection over the total with a retriable TOO_MANY_CONNECTIONS', () => {
    const limits = new ConnectionLimits({ maxConnections: 2, maxConnectionsPerSubject: 10 });
    expect(limits.tryOpen(null)).toBeNull();
    expect(limits.tryOpen('alice')).toBeNull();
    const err = limits.tryOpen('bob');
    expect(err?.code).toBe('TOO_MANY_CONNECTIONS');
    expect(err?.retriable).toBe(true);
    expect(err?.status).toBe(429);
    expect(err?.message).toMatch(/limit of 2/);
    limits.close(null);
    expect(limits.tryOpen('bob')).toBeNull();
    expect(limits.open).toBe(2);
  });

  it('limits each subject on its own, and others are unaffected', () => {
    const limits = new ConnectionLimits({ maxConnections: 100, maxConnectionsPerSubject: 2 });
    expect(limits.tryOpen('alice')).toBeNull();
    expect(limits.tryOpen('alice')).toBeNull();
    expect(limits.tryOpen('alice')?.message).toMatch(/for this subject: its limit is 2/);
    expect(limits.tryOpen('bob')).toBeNull();
    expect(limits.openFor('alice')).toBe(2);
    expect(limits.open).toBe(3); // the refused one was not counted
    limits.close('alice');
    expect(limits.tryOpen('alice')).toBeNull();
  });

  it('counts a connection before it authenticates and attaches it to its subject after', () => {
    const limits = new ConnectionLimits({ maxConnections: 10, maxConnectionsPerSubject: 1 });
    expect(limits.tryOpen(null)).toBeNull();
    expect(limits.tryOpen(null)).toBeNull();
    expect(limits.tryAttach('alice')).toBeNull();
    expect(limits.tryAttach('alice')?.code).toBe('TOO_MANY_CONNECTIONS');
    // the refused one closes as unattached
    limits.close(null);
    limits.close('alice');
    expect(limits.open).toBe(0);
    expect(limits.openFor('alice')).toBe(0);
  });

  it('anonymous connections (subject null) count only toward the total', () => {
    const limits = new ConnectionLimits({ maxConnections: 5, maxConnectionsPerSubject: 1 });
    for (let i = 0; i < 5; i++) expect(limits.tryOpen(null)).toBeNull();
    expect(limits.tryOpen(null)?.code).toBe('TOO_MANY_CONNECTIONS');
  });

  it('a close without an open is a bug and says so', () => {
    const limits = new ConnectionLimits({ maxConnections: 5, maxConnectionsPerSubject: 1 });
    expect(() => limits.close(null)).toThrow(/without a matching open/);
    limits.tryOpen(null);
    expect(() => limits.close('ghost')).toThrow(/no open connection/);
  });
});

describe('ConnectionQuota', () => {
  const limits = {
    produceBytesPerSec: 1000,
    produceBytesBurst: 1000,
    produceEventsPerSec: 10,
    produceEventsBurst: 10,
    maxSubscriptionsPerConnection: 2,
    maxInFlightPerConnection: 2,
  };

  it('rate-limits produce by records and by bytes, charging nothing when refused', () => {
    const q = new ConnectionQuota(limits);
    expect(q.admitProduce(500, 5, 0)).toBeNull();
    const byRecords = q.admitProduce(10, 6, 0);
    expect(byRecords?.code).toBe('RATE_LIMITED');
    expect(byRecords?.details?.retryAfterMs).toBe(100);
    expect(byRecords?.message).toMatch(/10 records\/s/);
    const byBytes = q.admitProduce(600, 1, 0);
    expect(byBytes?.message).toMatch(/1000 bytes\/s/);
    expect(byBytes?.details?.retryAfterMs).toBe(100);
    // the refused requests took nothing: exactly 5 records and 500 bytes remain
    expect(q.admitProduce(500, 5, 0)).toBeNull();
    expect(q.admitProduce(1, 1, 0)?.code).toBe('RATE_LIMITED');
  });

  it('bounds requests in flight and subscriptions per connection', () => {
    const q = new ConnectionQuota(limits);
    expect(q.beginRequest()).toBeNull();
    expect(q.beginRequest()).toBeNull();
    expect(q.beginRequest()?.code).toBe('TOO_MANY_IN_FLIGHT');
    q.endRequest();
    expect(q.beginRequest()).toBeNull();
    expect(q.addSubscription()).toBeNull();
    expect(q.addSubscription()).toBeNull();
    expect(q.addSubscription()?.code).toBe('TOO_MANY_SUBSCRIPTIONS');
    q.removeSubscription();
    expect(q.subscriptions).toBe(1);
    q.removeSubscription();
    expect(() => q.removeSubscription()).toThrow(/without addSubscription/);
  });
});
