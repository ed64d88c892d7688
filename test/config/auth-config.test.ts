import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { exportPKCS8, exportSPKI, generateKeyPair } from 'jose';
import { describe, expect, it } from 'vitest';
import { authConfigWarnings, resolveAuthConfig, type AuthConfigInput } from '../../server/auth/index.ts';
import { loadConfig } from '../../server/config.ts';
import { DEFAULT_CLIENT_LIMITS } from '../../server/limits/index.ts';
import { ConfigError, SETTINGS, envOf, flagOf } from '../../server/settings.ts';

const SECRET = 'a-test-secret-that-is-at-least-32-bytes-long';

function problemsOf(input: AuthConfigInput): string[] {
  try {
    resolveAuthConfig(input);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return [...(err as ConfigError).problems];
  }
  return [];
}

describe('resolveAuthConfig', () => {
  it('with nothing configured, auth is off, every origin allowed, and a loud warning', () => {
    const cfg = resolveAuthConfig();
    expect(cfg.mode).toBe('none');
    expect(cfg.allowedOrigins).toEqual([]);
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
    [{ clockToleranceSec: 3600 }, /fix the clocks/],
    [{ authTimeoutMs: -1 }, /authTimeoutMs/],
  ] as Array<[AuthConfigInput, RegExp]>)('refuses %j', (input, problem) => {
    expect(problemsOf(input).join('\n')).toMatch(problem);
  });

  it('lists every problem at once', () => {
    expect(problemsOf({ mode: 'jwt', clockToleranceSec: 3600, allowedOrigins: ['nope'] }).length).toBeGreaterThanOrEqual(3);
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
    const keys = Object.keys(SETTINGS);
    for (const names of [keys.map(flagOf), keys.map(envOf)]) expect(new Set(names).size).toBe(keys.length);
    for (const key of keys) {
      expect(envOf(key)).toMatch(/^TRIBUTARY_[A-Z0-9_]+$/);
      expect(flagOf(key)).toMatch(/^--[a-z0-9-]+$/);
    }
    expect(flagOf('auth.jwksUrl')).toBe('--auth-jwks-url');
    expect(envOf('limits.maxConnections')).toBe('TRIBUTARY_MAX_CONNECTIONS');
    expect(flagOf('auth.mode')).toBe('--auth');
  });

  it('flags win over the environment, which wins over the file', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tributary-auth-'));
    const file = path.join(dir, 'hub.json');
    fs.writeFileSync(
      file,
      JSON.stringify({ auth: { secret: 'from-file', issuer: 'file-iss', audience: 'file-aud' }, allowedOrigins: ['https://file.test'], limits: { maxConnections: 5, idleTimeoutMs: 1000 } }),
    );
    const cfg = loadConfig({
      file,
      env: { TRIBUTARY_AUTH_SECRET: SECRET, TRIBUTARY_AUTH_ISSUER: 'env-iss', TRIBUTARY_MAX_CONNECTIONS: '50', TRIBUTARY_AUTH_ALGORITHMS: 'HS256, HS512' },
      flags: { 'auth.issuer': 'flag-iss', allowedOrigins: 'https://a.test,https://*.b.test' },
    });
    expect(cfg.auth).toMatchObject({ secret: SECRET, issuer: 'flag-iss', audience: 'file-aud', algorithms: ['HS256', 'HS512'], allowedOrigins: ['https://a.test', 'https://*.b.test'] });
    expect(cfg.limits).toEqual({ ...DEFAULT_CLIENT_LIMITS, maxConnections: 50, idleTimeoutMs: 1000 });
    fs.rmSync(dir, { recursive: true });
  });

  it('reads a public key from PEM text with \\n escapes or from a file path', async () => {
    const { publicKey } = await generateKeyPair('EdDSA');
    const pem = await exportSPKI(publicKey);
    const escaped = loadConfig({ env: { TRIBUTARY_AUTH_PUBLIC_KEY: pem.replace(/\n/g, '\\n'), TRIBUTARY_ALLOWED_ORIGINS: '*' } });
    expect(escaped.auth.publicKey).toBe(pem);
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'tributary-auth-')), 'key.pem');
    fs.writeFileSync(file, pem);
    const fromFile = loadConfig({ env: {}, flags: { 'auth.publicKey': file, allowedOrigins: '*' } });
    expect(fromFile.auth.publicKey).toBe(pem);
    expect(fromFile.auth.algorithms).toEqual(['EdDSA', 'Ed25519']);
    fs.rmSync(path.dirname(file), { recursive: true });
  });

  it('names the source of every value that does not parse', () => {
    const bad = () => loadConfig({ env: { TRIBUTARY_MAX_CONNECTIONS: 'lots', TRIBUTARY_AUTH: 'maybe' } });
    expect(bad).toThrow(/env TRIBUTARY_MAX_CONNECTIONS: limits.maxConnections must be an integer/);
    expect(bad).toThrow(/env TRIBUTARY_AUTH: auth.mode must be one of none, jwt/);
    expect(() => loadConfig({ env: {}, flags: { 'auth.publicKey': '/no/such/file.pem' } })).toThrow(/flag --auth-public-key: auth.publicKey.*ENOENT/);
    expect(() => loadConfig({ env: {}, flags: { 'limits.produceBytesPerSec': '1.5' } })).toThrow(/limits.produceBytesPerSec must be an integer/);
  });
});
