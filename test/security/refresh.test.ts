/**
 * Tokens expire on open connections: an in-band refresh (`auth` frame, same
 * subject) keeps a subscription alive past the first token's expiry; without
 * one the hub closes with 4401 TOKEN_EXPIRED and says how to avoid it; a
 * refresh for another subject is refused and the old token keeps serving.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Hub } from '../../harness/hub.ts';
import { bytes, type WsClient } from '../helpers/ws-client.ts';
import { adminToken, authedClient, createTopic, sleep, startAuthHub, token } from '../helpers/auth-hub.ts';

let hub: Hub;
let producer: WsClient;
const clients: WsClient[] = [];
let producing = true;
let produced = 0;

beforeAll(async () => {
  hub = await startAuthHub();
  await createTopic(hub, 'ticks');
  producer = await authedClient(hub, await adminToken('ticker'));
  clients.push(producer);
  // A steady trickle of records for the subscribers to receive.
  void (async () => {
    while (producing) {
      await producer.produce('ticks', [{ v: bytes(`t${produced}`) }]).catch(() => undefined);
      produced++;
      await sleep(50); // paces the trickle (not a wait)
    }
  })();
});

afterAll(async () => {
  producing = false;
  await Promise.all(clients.map((c) => c.close()));
  await hub.stop();
  hub.cleanup();
});

describe('token expiry on an open connection', () => {
  it('an in-band refresh keeps a subscription alive past the first token expiry; without it the hub closes 4401', async () => {
    const claims = { consume: ['ticks'] };
    const refreshed = await authedClient(hub, await token({ sub: 'viewer', tributary: claims, expInSec: 3 }));
    const lapsed = await authedClient(hub, await token({ sub: 'viewer', tributary: claims, expInSec: 3 }));
    clients.push(refreshed, lapsed);
    const subR = await refreshed.subscribe('ticks', { from: 'latest' });
    await lapsed.subscribe('ticks', { from: 'latest' });
    const started = Date.now();

    await sleep(1500); // the scenario: refresh partway through the first token's 3 s life, as a client would
    const ok = await refreshed.request({ t: 'auth', token: await token({ sub: 'viewer', tributary: claims, expInSec: 60 }) });
    expect(ok.expiresAtMs).toBeGreaterThan(Date.now() + 50_000);

    const closed = await lapsed.closed;
    expect(closed.code).toBe(4401);
    expect(closed.reason).toBe('TOKEN_EXPIRED: token expired; refresh in band with an auth frame');
    expect(Date.now() - started).toBeLessThan(3500);

    await sleep(Math.max(0, 4000 - (Date.now() - started))); // proves a negative: the refreshed one is not closed past the first expiry
    const before = refreshed.records(subR.sub).length;
    await refreshed.waitForRecords(subR.sub, before + 5, 3000);
    expect(refreshed.ws.readyState).toBe(refreshed.ws.OPEN);
  });

  it('a refresh for another subject is refused (SUBJECT_CHANGED) and the old token keeps serving', async () => {
    const c = await authedClient(hub, await token({ sub: 'viewer', tributary: { consume: ['ticks'] }, expInSec: 60 }));
    clients.push(c);
    await expect(c.request({ t: 'auth', token: await token({ sub: 'someone-else', expInSec: 60 }) })).rejects.toMatchObject({ code: 'SUBJECT_CHANGED' });
    await expect(c.request({ t: 'auth', token: 'garbage' })).rejects.toMatchObject({ code: 'TOKEN_INVALID' });
    await expect(c.request({ t: 'metadata', topic: 'ticks' })).resolves.toMatchObject({ topic: 'ticks' });
  });
});
