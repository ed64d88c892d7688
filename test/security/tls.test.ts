/**
 * `tributary serve --tls-cert FILE --tls-key FILE`: the hub serves https://
 * and wss:// (uWS SSLApp), says so in its listening line, and a client that
 * trusts the certificate authenticates and produces over it. The
 * certificate is self-signed, made here with openssl.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDir, type Hub } from '../../harness/hub.ts';
import { WsClient } from '../helpers/ws-client.ts';
import { adminToken, startAuthHub } from '../helpers/auth-hub.ts';
import { waitFor } from '../../harness/wait.ts';

const hasOpenssl = spawnSync('openssl', ['version']).status === 0;
const dir = tempDir('tributary-tls-');
const certFile = path.join(dir, 'cert.pem');
const keyFile = path.join(dir, 'key.pem');
let hub: Hub;
let ca: Buffer;

/** GET over https trusting only our certificate. */
function get(url: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    https
      .get(url, { ca, headers }, (res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      })
      .on('error', reject);
  });
}

beforeAll(async () => {
  if (!hasOpenssl) return;
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-subj',
      '/CN=localhost',
      '-addext',
      'subjectAltName=IP:127.0.0.1,DNS:localhost',
      '-days',
      '1',
      '-keyout',
      keyFile,
      '-out',
      certFile,
    ],
    { stdio: 'ignore' },
  );
  ca = fs.readFileSync(certFile);
  hub = await startAuthHub(['--tls-cert', certFile, '--tls-key', keyFile], { waitHealthy: false });
  await waitFor(async () => (await get(`${hub.url}/healthz`).catch(() => ({ status: 0 }))).status === 200, 20_000, 'the TLS hub to be healthy');
});

afterAll(async () => {
  if (hub) {
    await hub.stop();
    hub.cleanup();
  }
  fs.rmSync(dir, { recursive: true, force: true });
});

describe.skipIf(!hasOpenssl)('TLS (skipped: openssl is not installed)', () => {
  it('serves https and wss with the given certificate', async () => {
    expect(hub.output()).toMatch(/listening on https:\/\/127\.0\.0\.1:\d+/);
    expect(hub.url.startsWith('https://')).toBe(true);
    expect(await get(`${hub.url}/healthz`)).toMatchObject({ status: 200 });
    expect((await get(`${hub.url}/v1/topics`)).status).toBe(401);

    const c = await WsClient.connect(hub.wsUrl, { options: { ca } });
    await expect(c.hello(await adminToken())).resolves.toMatchObject({ subject: 'ops' });
    await expect(c.request({ t: 'ping' })).resolves.toMatchObject({ t: 'ok' });
    await c.close();
  });

  it('a client that does not trust the certificate cannot connect', async () => {
    await expect(WsClient.connect(hub.wsUrl)).rejects.toThrow(/self-signed|certificate/i);
    await expect(fetch(`${hub.url}/healthz`)).rejects.toThrow();
  });
});

it('refuses a TLS certificate without its key at start-up', () => {
  const r = spawnSync(process.execPath, [path.resolve('bin/tributary.mjs'), 'serve', '--port', '0', '--data', dir, '--tls-cert', certFile], { encoding: 'utf8', timeout: 15_000 });
  expect(r.status).toBe(2);
  expect(r.stderr).toMatch(/tlsCert and tlsKey go together/);
});
