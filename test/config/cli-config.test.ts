/**
 * The `tributary serve` command and its settings: precedence flag > env >
 * file > default, clear refusals (bad values, public bind without auth, the
 * slow uWS fallback), and the settings reaching a running hub.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../server/config.ts';
import { SETTINGS, envOf, flagOf } from '../../server/settings.ts';
import { startHub, tempDir, type Hub } from '../../harness/hub.ts';
import { WsClient } from '../helpers/ws-client.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const hubs: Hub[] = [];

afterAll(async () => {
  for (const h of hubs) {
    await h.stop();
    h.cleanup();
  }
});

function serve(args: string[], env: Record<string, string> = {}): { status: number | null; out: string } {
  const r = spawnSync(process.execPath, [path.join(ROOT, 'bin/tributary.mjs'), 'serve', '--data', tempDir(), ...args], {
    cwd: ROOT,
    env: { ...process.env, TRIBUTARY_LOG_LEVEL: 'warn', ...env },
    encoding: 'utf8',
    timeout: 15_000,
  });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

describe('settings', () => {
  it('names every setting the same way in each source', () => {
    expect(envOf('topic.retentionMs')).toBe('TRIBUTARY_TOPIC_RETENTION_MS');
    expect(flagOf('topic.retentionMs')).toBe('--topic-retention-ms');
    expect(envOf('maxBufferedBytesPerConnection')).toBe('TRIBUTARY_MAX_BUFFERED_BYTES_PER_CONNECTION');
    for (const key of Object.keys(SETTINGS)) expect(envOf(key)).toMatch(/^TRIBUTARY_[A-Z0-9_]+$/);
  });

  it('resolves flag over env over file over default', () => {
    const dir = tempDir();
    const file = path.join(dir, 'hub.yaml');
    fs.writeFileSync(file, 'port: 7001\nlimits:\n  maxConnections: 11\ndefaultPartitions: 3\ntopic:\n  retentionMs: 5000\n');
    const cfg = loadConfig({ file, env: { TRIBUTARY_PORT: '7002', TRIBUTARY_MAX_CONNECTIONS: '12' }, flags: { port: '7003' } });
    expect(cfg.port).toBe(7003); // flag
    expect(cfg.limits.maxConnections).toBe(12); // env
    expect(cfg.defaultPartitions).toBe(3); // file
    expect(cfg.topic.retentionMs).toBe(5000); // file, nested
    expect(cfg.maxFrameBytes).toBe(SETTINGS.maxFrameBytes.default); // default
    expect(cfg.autoCreateTopics).toBe(true); // auth off
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('reads JSON config files too', () => {
    const dir = tempDir();
    const file = path.join(dir, 'hub.json');
    fs.writeFileSync(file, JSON.stringify({ host: '127.0.0.2', 'topic.fsync': 'never' }));
    const cfg = loadConfig({ file, env: {} });
    expect(cfg.host).toBe('127.0.0.2');
    expect(cfg.topic.fsync).toBe('never');
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('refuses bad values naming where they came from', () => {
    expect(() => loadConfig({ env: { TRIBUTARY_PORT: 'eighty' } })).toThrow(/env TRIBUTARY_PORT: port must be an integer/);
    expect(() => loadConfig({ env: {}, flags: { 'limits.maxConnections': '0' } })).toThrow(/flag --max-connections: limits.maxConnections must be >= 1/);
    expect(() => loadConfig({ env: { TRIBUTARY_TOPIC_FSYNC: 'sometimes' } })).toThrow(/must be one of always, interval, never/);
    const dir = tempDir();
    const file = path.join(dir, 'bad.yaml');
    fs.writeFileSync(file, 'prot: 80\n');
    expect(() => loadConfig({ file, env: {} })).toThrow(/unknown setting "prot"/);
    fs.writeFileSync(file, 'port: [1\n');
    expect(() => loadConfig({ file, env: {} })).toThrow(/not valid YAML/);
    fs.rmSync(dir, { recursive: true, force: true });
  });
});

describe('tributary serve', () => {
  it('applies a config file, overridden by env, overridden by flags, in a running hub', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'hub.yaml');
    fs.writeFileSync(file, 'maxFrameBytes: 2048\ndefaultPartitions: 2\ntopic:\n  retentionMs: 4242\n');
    const viaFile = await startHub({ args: ['--config', file] });
    hubs.push(viaFile);
    const viaEnv = await startHub({ args: ['--config', file], env: { TRIBUTARY_MAX_FRAME_BYTES: '4096' } });
    hubs.push(viaEnv);
    const viaFlag = await startHub({ args: ['--config', file, '--max-frame-bytes', '8192'], env: { TRIBUTARY_MAX_FRAME_BYTES: '4096' } });
    hubs.push(viaFlag);
    const frameLimit = async (h: Hub): Promise<unknown> => {
      const c = await WsClient.connect(h.wsUrl);
      const ok = await c.hello();
      await c.close();
      return ok.maxFrameBytes;
    };
    expect(await frameLimit(viaFile)).toBe(2048);
    expect(await frameLimit(viaEnv)).toBe(4096);
    expect(await frameLimit(viaFlag)).toBe(8192);
    await fetch(`${viaFile.url}/v1/topics/auto/records`, { method: 'POST', body: JSON.stringify({ records: [{ value: 1 }] }) });
    const d = (await (await fetch(`${viaFile.url}/v1/topics/auto`)).json()) as { partitions: number; config: { retentionMs: number } };
    expect(d).toMatchObject({ partitions: 2, config: { retentionMs: 4242 } });
  });

  it('refuses to bind a public address with auth off unless --insecure', () => {
    const r = serve(['--host', '0.0.0.0', '--port', '0']);
    expect(r.status).toBe(2);
    expect(r.out).toMatch(/refusing to bind 0\.0\.0\.0 with authentication off.*--insecure/s);
  });

  it('refuses the pure-Node uWS fallback unless allowed, and says which transport runs', async () => {
    const r = serve(['--host', '127.0.0.1', '--port', '0'], { UWS_USE_FALLBACK: '1' });
    expect(r.status).toBe(1);
    expect(r.out).toMatch(/pure-Node fallback.*refusing to start.*--allow-fallback-transport/s);
    const allowed = await startHub({ args: ['--allow-fallback-transport'], env: { UWS_USE_FALLBACK: '1', TRIBUTARY_LOG_LEVEL: 'info' } });
    hubs.push(allowed);
    expect(allowed.output()).toMatch(/"transport":"uWebSockets.js pure-Node fallback/);
    const native = await startHub({ env: { TRIBUTARY_LOG_LEVEL: 'info' } });
    hubs.push(native);
    expect(native.output()).toMatch(/"transport":"uWebSockets.js native/);
  });

  it('exits with a clear message on a bad flag value', () => {
    const r = serve(['--port', 'x']);
    expect(r.status).toBe(2);
    expect(r.out).toMatch(/flag --port: port must be an integer/);
  });
});
