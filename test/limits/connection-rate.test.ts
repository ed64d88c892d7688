/**
 * New connections per second per remote address: past the burst, the
 * upgrade is refused with 429 RATE_LIMITED and Retry-After, before anything
 * is counted; the bucket refills; the refusal is counted in /metrics.
 */
import http from 'node:http';
import { describe, expect, it } from 'vitest';
import { waitFor } from '../../harness/wait.ts';
import { useHub } from '../../harness/hub-fixture.ts';
import { UpgradeRefused, WsClient } from '../helpers/ws-client.ts';

// One new connection a second after a burst of 5: slow enough that a loaded machine cannot refill the bucket while the burst is spent.
const hub = useHub({ args: ['--connections-per-sec-per-address', '1', '--connections-burst-per-address', '5'] });

describe('connection rate per address', () => {
  it('refuses upgrades past the burst with 429 and Retry-After, then admits again once the bucket refills', async () => {
    const open = (await Promise.all(Array.from({ length: 5 }, () => WsClient.connect(hub.wsUrl)))).map((c) => hub.own(c));
    const refused = await WsClient.connect(hub.wsUrl).then(
      (c) => {
        hub.own(c);
        return null;
      },
      (e: unknown) => e,
    );
    expect(refused).toBeInstanceOf(UpgradeRefused);
    expect((refused as UpgradeRefused).status).toBe(429);
    expect(JSON.parse((refused as UpgradeRefused).body)).toMatchObject({ error: { code: 'RATE_LIMITED', retriable: true } });
    // The same refusal seen as plain HTTP: a Retry-After header in whole seconds.
    const raw = await new Promise<http.IncomingMessage>((resolve, reject) => {
      const req = http.get(hub.wsUrl.replace('ws:', 'http:'), {
        headers: { connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-version': '13', 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==' },
      });
      req.on('response', (res) => {
        res.resume();
        resolve(res);
      });
      req.on('upgrade', () => reject(new Error('upgraded although the bucket is empty')));
      req.on('error', reject);
    });
    expect(raw.statusCode).toBe(429);
    expect(Number(raw.headers['retry-after'])).toBeGreaterThanOrEqual(1);

    // The open connections still work while the address is throttled.
    await expect(open[0].request({ t: 'ping' })).resolves.toMatchObject({ t: 'ok' });

    // 1/s: a token comes back within a second or so; the upgrade succeeds once it has.
    let again: WsClient | undefined;
    await waitFor(
      async () => {
        again = await WsClient.connect(hub.wsUrl).catch(() => undefined);
        return again !== undefined;
      },
      10_000,
      'the bucket to refill',
    );
    hub.own(again!);
    await expect(again!.request({ t: 'ping' })).resolves.toMatchObject({ t: 'ok' });

    const metrics = await (await fetch(`${hub.url}/metrics`)).text();
    expect(metrics).toMatch(/tributary_limit_rejections_total\{limit="connectionsPerSecPerAddress"\} [1-9]/);
  });
});
