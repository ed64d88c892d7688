/**
 * The security settings are part of `tributary serve`'s one table: every
 * row is a flag, a variable and a config key with no name shared with
 * another row; invalid settings stop the hub
 * with every problem listed; auto-created topics default off with auth on.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../server/config.ts';
import { SETTINGS, envOf, flagOf } from '../../server/settings.ts';
import { startHub, tempDir } from '../../harness/hub.ts';
import { SECRET } from '../helpers/auth-hub.ts';

function serve(args: string[], env: Record<string, string> = {}): { status: number | null; out: string } {
  const r = spawnSync(process.execPath, [path.resolve('bin/tributary.mjs'), 'serve', '--port', '0', '--data', tempDir(), ...args], {
    env: { ...process.env, TRIBUTARY_LOG_LEVEL: 'warn', ...env },
    encoding: 'utf8',
    timeout: 15_000,
  });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

describe('security settings', () => {
  it('share no key, variable or flag with the other settings', () => {
    const keys = Object.keys(SETTINGS);
    for (const names of [keys.map(envOf), keys.map(flagOf)]) expect(new Set(names).size).toBe(keys.length);
  });

  it('merge flag over env over file like every setting', () => {
    const dir = tempDir();
    const file = path.join(dir, 'hub.yaml');
    fs.writeFileSync(file, `auth:\n  audience: from-file\n  issuer: from-file\nallowedOrigins: [https://a.test]\nlimits:\n  maxConnectionsPerSubject: 3\n  idleTimeoutMs: 9000\n`);
    const cfg = loadConfig({ file, env: { TRIBUTARY_AUTH_SECRET: SECRET, TRIBUTARY_AUTH_AUDIENCE: 'from-env', TRIBUTARY_IDLE_TIMEOUT_MS: '7000' }, flags: { 'auth.audience': 'from-flag' } });
    expect(cfg.authEnabled).toBe(true);
    expect(cfg.auth.audience).toBe('from-flag');
    expect(cfg.auth.issuer).toBe('from-file');
    expect(cfg.limits).toMatchObject({ maxConnectionsPerSubject: 3, idleTimeoutMs: 7000 });
    expect(cfg.autoCreateTopics).toBe(false);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('a bad security setting stops the hub with exit code 2 and every problem', () => {
    const r = serve(['--auth-secret', 'short', '--auth-algorithms', 'none']);
    expect(r.status).toBe(2);
    expect(r.out).toMatch(/secret must be at least 32 bytes/);
    expect(r.out).toMatch(/algorithms may not contain "none"/);
  });

  it('with auth on, a public bind needs no --insecure; the start-up warnings are logged', async () => {
    const hub = await startHub({ args: ['--host', '0.0.0.0', '--allowed-origins', '*'], env: { TRIBUTARY_AUTH_SECRET: SECRET } });
    try {
      expect(hub.output()).toMatch(/listening on http:\/\/0\.0\.0\.0:\d+/);
      expect(hub.output()).toMatch(/no audience configured/);
      expect(hub.output()).toMatch(/allowedOrigins is \\"\*\\"/);
    } finally {
      await hub.stop();
      hub.cleanup();
    }
  });
});
