import { describe, expect, it } from 'vitest';
import { LIMITS } from '../../protocol/limits.ts';
import { authFromWebSocketProtocol, bearerFromAuthorization, checkNoTokenInUrl, urlCarriesToken } from '../../server/auth/index.ts';

const JWT = 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl';

describe('bearerFromAuthorization', () => {
  it('reads Bearer tokens, the scheme in any case', () => {
    expect(bearerFromAuthorization(`Bearer ${JWT}`)).toBe(JWT);
    expect(bearerFromAuthorization(`bearer ${JWT}`)).toBe(JWT);
    expect(bearerFromAuthorization(`BEARER   ${JWT} `)).toBe(JWT);
  });

  it('no header is no token', () => {
    expect(bearerFromAuthorization(undefined)).toBeNull();
    expect(bearerFromAuthorization('')).toBeNull();
  });

  it.each([
    ['Basic dXNlcjpwYXNz', /scheme must be Bearer, not "Basic"/],
    ['Bearer', /must be "Bearer <token>"/],
    [`Bearer ${JWT} extra`, /must be "Bearer <token>"/],
    ['Bearer a"b', /characters a bearer token cannot hold/],
    [`Bearer ${'a'.repeat(LIMITS.maxTokenBytes + 1)}`, /longer than/],
  ])('refuses %s', (header, msg) => {
    expect(() => bearerFromAuthorization(header)).toThrow(msg);
  });
});

describe('authFromWebSocketProtocol', () => {
  it('takes the token from bearer.<JWT> and answers tributary.v1, never the bearer entry', () => {
    expect(authFromWebSocketProtocol(`tributary.v1, bearer.${JWT}`)).toEqual({ protocol: 'tributary.v1', token: JWT });
    expect(authFromWebSocketProtocol(`bearer.${JWT},tributary.v1`)).toEqual({ protocol: 'tributary.v1', token: JWT });
  });

  it('without a bearer entry, the protocol only (the token comes in hello)', () => {
    expect(authFromWebSocketProtocol('tributary.v1')).toEqual({ protocol: 'tributary.v1', token: null });
    expect(authFromWebSocketProtocol(undefined)).toEqual({ protocol: null, token: null });
    expect(authFromWebSocketProtocol('mqtt')).toEqual({ protocol: null, token: null });
  });

  it('refuses a bearer entry without tributary.v1, two bearer entries, and bad tokens', () => {
    expect(() => authFromWebSocketProtocol(`bearer.${JWT}`)).toThrow(/does not offer tributary.v1/);
    expect(() => authFromWebSocketProtocol(`tributary.v1, bearer.${JWT}, bearer.${JWT}`)).toThrow(/more than one bearer/);
    expect(() => authFromWebSocketProtocol('tributary.v1, bearer.')).toThrow(/cannot hold/);
  });
});

describe('tokens in URLs', () => {
  it('are detected so the transport can refuse them', () => {
    expect(urlCarriesToken('?token=abc')).toBe(true);
    expect(urlCarriesToken('access_token=abc&x=1')).toBe(true);
    expect(urlCarriesToken('?topic=orders')).toBe(false);
    expect(urlCarriesToken('')).toBe(false);
    expect(checkNoTokenInUrl('jwt=abc')?.code).toBe('BAD_REQUEST');
    expect(checkNoTokenInUrl('from=earliest')).toBeNull();
  });
});
