import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { exportPKCS8, exportSPKI, generateKeyPair } from 'jose';
import { describe, expect, it } from 'vitest';
import {
  AUTH_SETTINGS,
  AuthConfigError,
  authConfigWarnings,
  authInputFromSources,
  DEFAULT_LIMITS,
  flagProperty,
  resolveAuthConfig,
  type AuthConfigInput,
} from '../../server/auth/index.ts';

const SECRET = 'a-test-secret-that-is-at-least-32-bytes-long';

function problemsOf(input: AuthConfigInput): string[] {
  try {
    resolveAuthConfig(input);
  } catch (err) {
    expect(err).toBeInstanceOf(AuthConfigError);
    return (err as AuthConfigError).problems;
  }
  return [];
}

describe('resolveAuthConfig', () => {
  it('with nothing configured, auth is off, every origin allowed, and a loud warning', () => {
    const cfg = resolveAuthConfig();
    expect(cfg.mode).toBe('none');
    expect(cfg.allowedOrigins).toEqual([]);
    expect(cfg.limits).toEqual(DEFAULT_LIMITS);
    expect(cfg.authTimeoutMs).toBe(10_000);
    expect(cfg.clockToleranceSec).toBe(30);
    expect(authConfigWarnings(cfg)[0]).toMatch(/AUTH IS OFF/);
  });

  it('derives jwt mode and HMAC algorithms from a secret', () => {
    const cfg = resolveAuthConfig({ secret: SECRET, allowedOrigins: ['https://app.example.com'] });
    expect(cfg.mode).toBe('jwt');
    expect(cfg.algorithms).toEqual(['HS256', 'HS384', 'HS512']);
    expect(authConfigWarnings(cfg)).toEqual([expect.stringMatching(/no audience configured/)]);
  });

  it('derives asymmetric algorithms for a JWKS URL, never none', () => {
    const cfg = resolveAuthConfig({ jwksUrl: 'https://idp.example.com/jwks.json', allowedOrigins: ['*'] });
    expect(cfg.algorithms).toContain('RS256');
    expect(cfg.algorithms).toContain('EdDSA');
    expect(cfg.algorithms.some((a) => /^HS|none/i.test(a))).toBe(false);
  });

  it.each([
    [{ mode: 'jwt' }, /no key source is set/],
    [{ mode: 'none', secret: SECRET }, /mode is "none" but secret is set/],
    [{ secret: SECRET, jwksUrl: 'https://x.test/j' }, /exactly one key source/],
    [{ secret: 'short' }, /at least 32 bytes/],
    [{ secret: SECRET, algorithms: ['none'] }, /may not contain "none"/],
    [{ secret: SECRET, algorithms: ['RS256'] }, /RS256 does not fit the configured secret/],
    [{ secret: SECRET, algorithms: ['HS999'] }, /"HS999" is unknown/],
    [{ jwksUrl: 'http://idp.example.com/jwks' }, /must be https/],
    [{ jwksUrl: 'not a url' }, /is not a URL/],
    [{ publicKey: 'hello' }, /must be PEM text/],
    [{ allowedOrigins: ['https://example.com/'] }, /no path, trailing slash/],
    [{ allowedOrigins: ['example.com'] }, /is not an origin/],
    [{ allowedOrigins: ['ftp://example.com'] }, /must be http or https/],
    [{ allowedOrigins: ['https://*.*.example.com'] }, /one wildcard, as its leftmost label/],
    [{ allowedOrigins: ['https://app.*.example.com'] }, /one wildcard, as its leftmost label/],
    [{ limits: { maxConnections: 0 } }, /limits.maxConnections must be a positive integer/],
    [{ limits: { produceBytesPerSec: 1.5 } }, /limits.produceBytesPerSec/],
    [{ clockToleranceSec: 3600 }, /fix the clocks/],
    [{ authTimeoutMs: -1 }, /authTimeoutMs/],
  ] as Array<[AuthConfigInput, RegExp]>)('refuses %j', (input, problem) => {
    expect(problemsOf(input).join('\n')).toMatch(problem);
  });

  it('lists every problem at once', () => {
    expect(problemsOf({ mode: 'jwt', limits: { maxConnections: -1 }, allowedOrigins: ['nope'] }).length).toBeGreaterThanOrEqual(3);
  });

  it('accepts loopback http JWKS for development and tests', () => {
    expect(problemsOf({ jwksUrl: 'http://127.0.0.1:9999/jwks', allowedOrigins: ['*'] })).toEqual([]);
    expect(problemsOf({ jwksUrl: 'http://localhost/jwks', allowedOrigins: ['*'] })).toEqual([]);
  });

  it('reads a PEM public key, derives its algorithms, and refuses a private key or a mismatched algorithm', async () => {
    const { publicKey, privateKey } = await generateKeyPair('ES384', { extractable: true });
    const cfg = resolveAuthConfig({ publicKey: await exportSPKI(publicKey), allowedOrigins: ['*'] });
    expect(cfg.algorithms).toEqual(['ES384']);
    expect(problemsOf({ publicKey: await exportPKCS8(privateKey), allowedOrigins: ['*'] }).join()).toMatch(/PRIVATE key/);
    expect(problemsOf({ publicKey: await exportSPKI(publicKey), algorithms: ['ES256'], allowedOrigins: ['*'] }).join()).toMatch(/ES256 does not fit/);
  });

  it('accepts wildcard and exact origins', () => {
    expect(problemsOf({ allowedOrigins: ['https://*.example.com', 'http://localhost:5173', '*'] })).toEqual([]);
  });
});

describe('settings: flag, environment variable and config key', () => {
  it('every setting has all three names, unique', () => {
    for (const key of ['key', 'env', 'flag'] as const) {
      expect(new Set(AUTH_SETTINGS.map((s) => s[key])).size).toBe(AUTH_SETTINGS.length);
    }
    for (const s of AUTH_SETTINGS) {
      expect(s.env).toMatch(/^TRIBUTARY_[A-Z_]+$/);
      expect(s.flag).toMatch(/^--[a-z-]+$/);
    }
    expect(flagProperty('--auth-jwks-url')).toBe('authJwksUrl');
  });

  it('flags win over the environment, which wins over the file', () => {
    const input = authInputFromSources({
      file: { auth: { secret: 'from-file', issuer: 'file-iss', audience: 'file-aud' }, allowedOrigins: ['https://file.test'], limits: { maxConnections: 5, idleTimeoutMs: 1000 } },
      env: { TRIBUTARY_AUTH_SECRET: SECRET, TRIBUTARY_AUTH_ISSUER: 'env-iss', TRIBUTARY_MAX_CONNECTIONS: '50', TRIBUTARY_AUTH_ALGORITHMS: 'HS256, HS512' },
      flags: { authIssuer: 'flag-iss', allowedOrigins: 'https://a.test,https://*.b.test' },
    });
    expect(input).toEqual({
      secret: SECRET,
      issuer: 'flag-iss',
      audience: 'file-aud',
      algorithms: ['HS256', 'HS512'],
      allowedOrigins: ['https://a.test', 'https://*.b.test'],
      limits: { maxConnections: 50, idleTimeoutMs: 1000 },
    });
    const cfg = resolveAuthConfig(input);
    expect(cfg.limits.maxConnections).toBe(50);
    expect(cfg.limits.maxConnectionsPerSubject).toBe(DEFAULT_LIMITS.maxConnectionsPerSubject);
  });

  it('reads a public key from PEM text with \\n escapes or from a file path', async () => {
    const { publicKey } = await generateKeyPair('EdDSA');
    const pem = await exportSPKI(publicKey);
    const escaped = authInputFromSources({ env: { TRIBUTARY_AUTH_PUBLIC_KEY: pem.replace(/\n/g, '\\n') } });
    expect(escaped.publicKey).toBe(pem);
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'tributary-auth-')), 'key.pem');
    fs.writeFileSync(file, pem);
    expect(authInputFromSources({ flags: { authPublicKey: file } }).publicKey).toBe(pem);
    expect(resolveAuthConfig({ ...authInputFromSources({ flags: { authPublicKey: file } }), allowedOrigins: ['*'] }).algorithms).toEqual(['EdDSA', 'Ed25519']);
    fs.rmSync(path.dirname(file), { recursive: true });
  });

  it('names the source of a value that does not parse', () => {
    const bad = () => authInputFromSources({ env: { TRIBUTARY_MAX_CONNECTIONS: 'lots', TRIBUTARY_AUTH: 'maybe' } });
    expect(bad).toThrow(/limits.maxConnections \(from TRIBUTARY_MAX_CONNECTIONS\) must be a non-negative integer/);
    expect(bad).toThrow(/auth.mode \(from TRIBUTARY_AUTH\) must be "none" or "jwt"/);
    expect(() => authInputFromSources({ file: { auth: { publicKey: '/no/such/file.pem' } } })).toThrow(/config key auth.publicKey.*ENOENT/);
  });
});
