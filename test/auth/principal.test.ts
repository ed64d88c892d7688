import { describe, expect, it } from 'vitest';
import { anonymousPrincipal, expiryDelayMs, MAX_PATTERNS_PER_LIST, MAX_TIMER_DELAY_MS, PatternSet, principalFromClaims } from '../../server/auth/index.ts';
import { SHARED_PRINCIPALS_MAX } from '../../server/auth/principal.ts';

describe('permission patterns', () => {
  const table: Array<[pattern: string, name: string, matches: boolean]> = [
    ['orders', 'orders', true],
    ['orders', 'orders2', false],
    ['orders', 'order', false],
    ['sensors.*', 'sensors.a', true],
    ['sensors.*', 'sensors.a.b', true],
    ['sensors.*', 'sensors', false],
    ['sensors.*', 'sensorsX', false],
    ['sensors.*', 'sensorsX.a', false],
    ['sensors.*', 'sensors.', false], // at least one character after the dot
    ['sensors.*', 'other.sensors.a', false],
    ['a.b.*', 'a.b.c', true],
    ['a.b.*', 'a.bc', false],
    ['*', 'anything', true],
    ['*', 'sensors.a.b', true],
    // not patterns: grant nothing
    ['sensors*', 'sensorsX', false],
    ['sensors*', 'sensors*', false],
    ['*.a', 'x.a', false],
    ['a.*.b', 'a.x.b', false],
    ['.*', 'x', false],
    ['', '', false],
  ];
  it.each(table)('%s vs %s → %s', (pattern, name, matches) => {
    expect(PatternSet.from([pattern]).matches(name)).toBe(matches);
  });

  it('ignores malformed entries but keeps the good ones beside them', () => {
    const set = PatternSet.from(['orders', 42, null, { x: 1 }, 'x'.repeat(300), 'bad name', 'sensors.*']);
    expect(set.matches('orders')).toBe(true);
    expect(set.matches('sensors.t1')).toBe(true);
    expect(set.ignored).toBe(5);
  });

  it('grants nothing for a list longer than the bound (fails closed, not truncated)', () => {
    const long = Array.from({ length: MAX_PATTERNS_PER_LIST + 1 }, (_, i) => `t${i}`);
    expect(PatternSet.from(long).matches('t0')).toBe(false);
    expect(PatternSet.from(long.slice(0, MAX_PATTERNS_PER_LIST)).matches('t0')).toBe(true);
  });
});

describe('principals from claims', () => {
  it('reads produce, consume, groups and admin separately', () => {
    const p = principalFromClaims('svc', { sub: 'svc', tributary: { produce: ['orders', 'sensors.*'], consume: ['orders'], groups: ['billing'], admin: true } }, null);
    expect(p.canProduce('sensors.eu.t1')).toBe(true);
    expect(p.canConsume('sensors.eu.t1')).toBe(false);
    expect(p.canConsume('orders')).toBe(true);
    expect(p.canJoin('billing')).toBe(true);
    expect(p.canJoin('orders')).toBe(false);
    expect(p.admin).toBe(true);
    expect(String(p)).toBe('Principal(svc; produce: orders, sensors.*; consume: orders; groups: billing; admin)');
  });

  it.each([
    ['no tributary claim', { sub: 'x' }],
    ['tributary is a string', { tributary: 'admin' }],
    ['tributary is an array', { tributary: [['*']] }],
    ['tributary is null', { tributary: null }],
    ['lists are strings', { tributary: { produce: '*', consume: '*', groups: '*' } }],
    ['lists are objects', { tributary: { produce: { 0: '*' }, consume: 1, groups: true } }],
    ['admin is truthy but not true', { tributary: { admin: 'true' } }],
    ['claims are not an object', 'garbage'],
  ])('a malformed claim (%s) grants nothing and never throws', (_label, claims) => {
    const p = principalFromClaims('x', claims, null);
    expect([p.canProduce('orders'), p.canConsume('orders'), p.canJoin('g'), p.admin]).toEqual([false, false, false, false]);
  });

  it('the anonymous principal (auth off) may do everything', () => {
    const p = anonymousPrincipal();
    expect(p.anonymous).toBe(true);
    expect([p.canProduce('a'), p.canConsume('b.c'), p.canJoin('g'), p.admin]).toEqual([true, true, true, true]);
    expect(p.expiresAtMs).toBeNull();
  });

  it('expiryDelayMs clamps to what setTimeout can hold', () => {
    expect(expiryDelayMs(principalFromClaims('x', {}, 10_000), 4_000)).toBe(6_000);
    expect(expiryDelayMs(principalFromClaims('x', {}, 10_000), 20_000)).toBe(0);
    expect(expiryDelayMs(principalFromClaims('x', {}, 1e15), 0)).toBe(MAX_TIMER_DELAY_MS);
    expect(expiryDelayMs(principalFromClaims('x', {}, null), 0)).toBeNull();
  });

  it('connections with the same token share one frozen principal; the same claims share the compiled permissions', () => {
    const claims = (): unknown => ({ sub: 'dev', tributary: { produce: ['sensors.*'], consume: ['cmd'] } });
    const a = principalFromClaims('dev', claims(), 5_000);
    const b = principalFromClaims('dev', claims(), 5_000);
    expect(b).toBe(a);
    expect(Object.isFrozen(a)).toBe(true);
    // Another subject or expiry is another principal, with the same permissions object.
    const other = principalFromClaims('dev2', claims(), 5_000);
    const later = principalFromClaims('dev', claims(), 6_000);
    expect(other).not.toBe(a);
    expect(later.expiresAtMs).toBe(6_000);
    const permsOf = (p: unknown): unknown => (p as { perms: unknown }).perms;
    expect(permsOf(other)).toBe(permsOf(a));
    expect(permsOf(later)).toBe(permsOf(a));
    expect([other.subject, other.canProduce('sensors.x'), other.canConsume('cmd'), other.canJoin('g')]).toEqual(['dev2', true, true, false]);
    // Different claims never share: a subject cannot borrow another's permissions through the key.
    const narrower = principalFromClaims('dev', { tributary: { produce: ['sensors.a'] } }, 5_000);
    expect([narrower.canProduce('sensors.b'), narrower.canConsume('cmd')]).toEqual([false, false]);
    const tricky = principalFromClaims('dev" 5000 {"produce":["*"]}', { tributary: {} }, 5_000);
    expect(tricky.canProduce('anything')).toBe(false);
  });

  it('a flood of distinct claims keeps answering correctly past the cache bound', () => {
    for (let i = 0; i < SHARED_PRINCIPALS_MAX * 2; i++) {
      const p = principalFromClaims(`s${i}`, { tributary: { produce: [`t${i}`] } }, null);
      expect([p.canProduce(`t${i}`), p.canProduce(`t${i + 1}`)]).toEqual([true, false]);
    }
    const first = principalFromClaims('s0', { tributary: { produce: ['t0'] } }, null);
    expect([first.subject, first.canProduce('t0'), first.canProduce('t1')]).toEqual(['s0', true, false]);
  });
});
