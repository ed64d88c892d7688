/**
 * The hub's limits and bad frames, each answered with its own typed error:
 * frame too large (close 4413), too many subscriptions, too many requests in
 * flight, too many connections (close 4429); malformed frames get BAD_FRAME
 * with their id and the connection stays usable.
 */
import { describe, expect, it } from 'vitest';
import { encodeCbor } from '../../protocol/codec.ts';
import { useHub } from '../../harness/hub-fixture.ts';
import { bytes, WsClient } from '../helpers/ws-client.ts';
import { waitFor } from '../../harness/wait.ts';

const MAX_FRAME = 64 * 1024;
const hub = useHub({
  args: ['--max-frame-bytes', String(MAX_FRAME), '--max-subscriptions-per-connection', '3', '--max-in-flight-per-connection', '4', '--max-connections', '6'],
});

async function client(): Promise<WsClient> {
  return hub.own(await WsClient.connect(hub.wsUrl));
}

describe('limits', () => {
  it('closes with 4413 FRAME_TOO_LARGE for a frame over maxFrameBytes', async () => {
    const c = await client();
    await c.produce('frames', [{ v: new Uint8Array(MAX_FRAME / 2) }]); // under the limit: fine
    c.produce('frames', [{ v: new Uint8Array(MAX_FRAME + 100) }]).catch(() => undefined);
    const closed = await c.closed;
    expect(closed.code).toBe(4413);
    expect(closed.reason).toMatch(/^FRAME_TOO_LARGE/);
  });

  it('refuses a subscription past maxSubscriptionsPerConnection with TOO_MANY_SUBSCRIPTIONS', async () => {
    const c = await client();
    const subs = [];
    for (let i = 0; i < 3; i++) subs.push(await c.subscribe('subs', { from: 'latest' }));
    await expect(c.subscribe('subs', { from: 'latest' })).rejects.toMatchObject({ code: 'TOO_MANY_SUBSCRIPTIONS' });
    // Freeing one makes room again; the connection stayed usable throughout.
    await c.unsubscribe(subs[0].sub);
    await expect(c.subscribe('subs', { from: 'latest' })).resolves.toMatchObject({ t: 'ok' });
  });

  it('refuses requests past maxInFlightPerConnection with TOO_MANY_IN_FLIGHT', async () => {
    const c = await client();
    await c.produce('inflight', [{ v: bytes('create the topic first') }]);
    // In one write: frames that arrived apart could each be acked (a fast disk) before the next one came.
    const results = await Promise.allSettled(c.corked(() => Array.from({ length: 12 }, (_, i) => c.produce('inflight', [{ v: bytes(`r${i}`) }]))));
    const refused = results.filter((r) => r.status === 'rejected');
    expect(refused.length).toBeGreaterThan(0);
    for (const r of refused) expect((r as PromiseRejectedResult).reason).toMatchObject({ code: 'TOO_MANY_IN_FLIGHT', retriable: true });
    expect(results.filter((r) => r.status === 'fulfilled').length).toBeGreaterThanOrEqual(4);
    await expect(c.produce('inflight', [{ v: bytes('after') }])).resolves.toMatchObject({ t: 'ack' });
  });

  it('closes connections past maxConnections with 4429 TOO_MANY_CONNECTIONS', async () => {
    const open_ = async (): Promise<number> => Number(/^tributary_connections (\d+)/m.exec(await (await fetch(`${hub.url}/metrics`)).text())?.[1] ?? -1);
    await hub.closeOwned();
    await waitFor(async () => (await open_()) === 0, 10_000, 'the hub to count the closes');
    const open: WsClient[] = [];
    for (let i = 0; i < 6; i++) open.push(await client());
    const extra = await WsClient.connect(hub.wsUrl);
    const closed = await extra.closed;
    expect(closed.code).toBe(4429);
    expect(closed.reason).toMatch(/^TOO_MANY_CONNECTIONS/);
    await open[0].close();
    await waitFor(async () => (await open_()) === 5, 10_000, 'the hub to count the close');
    const again = await client();
    await expect(again.request({ t: 'ping' })).resolves.toMatchObject({ t: 'ok' });
    const metrics = await (await fetch(`${hub.url}/metrics`)).text();
    expect(metrics).toMatch(/tributary_limit_rejections_total\{limit="maxConnections"\} 1/);
    await hub.closeOwned();
    await waitFor(async () => (await open_()) === 0, 10_000, 'the hub to count the closes');
  });
});

describe('bad frames', () => {
  it('answers malformed frames with typed errors and keeps the connection', async () => {
    const c = await client();
    c.sendRaw(new Uint8Array([0xff, 0xfe, 0x00]));
    c.sendRaw(encodeCbor({ t: 'produce', id: 77, topic: 'bad topic!', records: [{ v: bytes('x') }] }));
    c.sendRaw(encodeCbor({ t: 'nope', id: 78 }));
    c.sendRaw(encodeCbor({ t: 'produce', id: 79, topic: 'ok', records: [{ v: 'not bytes' }] }));
    await c.until(() => c.unsolicitedErrors.length >= 4);
    expect(c.unsolicitedErrors.map((e) => [e.id, e.code])).toEqual([
      [undefined, 'BAD_FRAME'],
      [77, 'BAD_TOPIC_NAME'],
      [78, 'BAD_FRAME'],
      [79, 'BAD_RECORD'],
    ]);
    await expect(c.request({ t: 'ping' })).resolves.toMatchObject({ t: 'ok' });
  });

  it('answers unknown subscriptions, unsupported versions and group members choosing partitions with their codes', async () => {
    const c = await client();
    await expect(c.unsubscribe(999)).rejects.toMatchObject({ code: 'UNKNOWN_SUBSCRIPTION' });
    await expect(c.subscribe('g', { group: 'billing', partitions: [0] })).rejects.toMatchObject({ code: 'BAD_REQUEST' });
    await expect(c.request({ t: 'heartbeat', sub: 999 })).rejects.toMatchObject({ code: 'UNKNOWN_SUBSCRIPTION' });
    await expect(c.request({ t: 'metadata', topic: 'never-created' })).rejects.toMatchObject({ code: 'UNKNOWN_TOPIC' });
    await expect(c.request({ t: 'hello', v: 99 })).rejects.toMatchObject({ code: 'UNSUPPORTED_VERSION' });
    const closed = await c.closed;
    expect(closed.code).toBe(4400);
  });
});
