import { describe, expect, it } from 'vitest';
import { isPreflight, OriginPolicy } from '../../server/auth/index.ts';

describe('OriginPolicy', () => {
  const policy = new OriginPolicy(['https://app.example.com', 'http://localhost:5173', 'https://*.example.org'], true);

  it.each([
    ['https://app.example.com', true],
    ['HTTPS://APP.EXAMPLE.COM', true],
    ['http://app.example.com', false], // scheme matters
    ['https://app.example.com:8443', false], // port matters
    ['https://evil.example.com', false],
    ['https://app.example.com.evil.test', false],
    ['http://localhost:5173', true],
    ['http://localhost:5174', false],
    ['https://a.example.org', true],
    ['https://a.b.example.org', true], // any depth
    ['https://example.org', false], // not the apex
    ['https://evilexample.org', false],
    ['http://a.example.org', false],
    ['https://a.example.org:444', false],
    ['null', false],
    ['garbage', false],
  ])('%s → %s', (origin, allowed) => {
    expect(policy.allows(origin)).toBe(allowed);
    expect(policy.check(origin)?.code ?? null).toBe(allowed ? null : 'ORIGIN_FORBIDDEN');
  });

  it('lets requests without an Origin through (not a browser page)', () => {
    expect(policy.allows(undefined)).toBe(true);
    expect(policy.corsHeaders(undefined)).toEqual({ Vary: 'Origin' });
  });

  it('an empty list allows all only with auth off', () => {
    expect(new OriginPolicy([], false).allows('https://anything.test')).toBe(true);
    expect(new OriginPolicy([], true).allows('https://anything.test')).toBe(false);
    expect(new OriginPolicy(['*'], true).allows('null')).toBe(true);
  });

  it('answers CORS by echoing the allowed origin, with Vary and no credentials', () => {
    const h = policy.corsHeaders('https://a.example.org');
    expect(h).toEqual({
      'Access-Control-Allow-Origin': 'https://a.example.org',
      'Access-Control-Expose-Headers': 'Retry-After, Content-Type',
      Vary: 'Origin',
    });
    expect(policy.corsHeaders('https://evil.test')).toBeNull();
    expect(new OriginPolicy(['*'], true).corsHeaders('https://x.test')?.['Access-Control-Allow-Origin']).toBe('https://x.test');
  });

  it('answers preflights with methods, headers and max age', () => {
    const h = policy.preflightHeaders('https://app.example.com');
    expect(h?.['Access-Control-Allow-Headers']).toMatch(/Authorization/);
    expect(h?.['Access-Control-Allow-Methods']).toMatch(/POST/);
    expect(h?.['Access-Control-Max-Age']).toBe('600');
    expect(policy.preflightHeaders('https://evil.test')).toBeNull();
    expect(isPreflight('OPTIONS', { origin: 'https://app.example.com', accessControlRequestMethod: 'POST' })).toBe(true);
    expect(isPreflight('OPTIONS', { origin: 'https://app.example.com' })).toBe(false);
  });
});
