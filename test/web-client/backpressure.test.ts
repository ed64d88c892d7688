/**
 * Backpressure in the producer (Kafka's max.block.ms): at the outbox's bounds
 * send() waits for acks to make room instead of failing, keeps send order,
 * and gives up with OUTBOX_FULL only after maxBlockMs; sendMany queues many
 * events in one outbox transaction.
 */
import { describe, expect, it } from 'vitest';
import { useHub } from '../../harness/hub-fixture.ts';
import { ClientError, createClient, type Client } from '../../web-client/index.ts';
import { createTopic, exactlyOnceProblems, readTopic } from '../../harness/topic-reader.ts';

const hub = useHub();
const client = (opts: Partial<Parameters<typeof createClient>[0]> = {}): Client => {
  const c = createClient({ url: hub.wsUrl, outbox: 'memory', name: `bp-${Math.random()}`, ...opts });
  hub.own(c);
  return c;
};

describe('send() at the outbox bound', () => {
  it('200,000 events in groups of 1,000 through a 100,000-event outbox: every event stored exactly once, in key order', async () => {
    await createTopic(hub.url, 'bp-200k', 4);
    const c = client();
    const total = 200_000;
    for (let base = 0; base < total; base += 1_000) {
      const sends: Array<Promise<void>> = [];
      for (let n = base; n < base + 1_000; n++) sends.push(c.send('bp-200k', { key: `k${n % 13}`, value: { n } }));
      await Promise.all(sends);
    }
    await c.flush();
    expect(await c.pending()).toBe(0);
    expect(await c.failed()).toEqual([]);
    const records = await readTopic(hub.url, 'bp-200k');
    expect(records.length).toBe(total);
    expect(exactlyOnceProblems(records, total)).toBe('');
  }, 400_000); // 60–100 s on the shared 2-core machine: 200,000 acked events and a read-back over HTTP

  it('an offline client with a full outbox gets OUTBOX_FULL after maxBlockMs, not before', async () => {
    const c = client({ url: 'ws://127.0.0.1:1/v1/ws', maxOutboxEvents: 5, maxBlockMs: 400 });
    for (let i = 0; i < 5; i++) await c.send('offline-full', { value: i });
    const t0 = Date.now();
    const err = await c.send('offline-full', { value: 5 }).catch((e) => e);
    const waited = Date.now() - t0;
    expect(err).toBeInstanceOf(ClientError);
    expect(err.code).toBe('OUTBOX_FULL');
    expect(waited).toBeGreaterThanOrEqual(350);
    expect(await c.pending()).toBe(5);
  });

  it('a send waiting for room goes in once the hub drains the outbox, after the ones before it', async () => {
    const c = client({ maxOutboxEvents: 10 });
    await createTopic(hub.url, 'bp-wait', 1);
    await c.pending(); // the client is ready: sends and sendMany go straight to the producer
    const sends: Array<Promise<void>> = [];
    // The sends of one tick are one burst; a sendMany among them keeps its place in send order.
    for (let n = 0; n < 50; n++) {
      if (n === 20) {
        sends.push(
          c.sendMany(
            'bp-wait',
            [20, 21, 22, 23, 24].map((m) => ({ key: 'one', value: { n: m } })),
          ),
        );
        n = 24;
      } else sends.push(c.send('bp-wait', { key: 'one', value: { n } }));
    }
    await Promise.all(sends);
    await c.flush();
    const records = await readTopic(hub.url, 'bp-wait');
    expect(exactlyOnceProblems(records, 50)).toBe('');
    expect(records.map((r) => (r.value as { n: number }).n)).toEqual([...Array(50).keys()]);
  });

  it('sendMany validates every event first and queues them in one go', async () => {
    await createTopic(hub.url, 'bp-many', 2);
    const c = client();
    await expect(c.sendMany('bp-many', [{ value: { n: 0 } }, {} as never])).rejects.toMatchObject({ code: 'BAD_RECORD' });
    expect(await c.pending()).toBe(0);
    const events = Array.from({ length: 20_000 }, (_, n) => ({ key: `k${n % 5}`, value: { n } }));
    await c.sendMany('bp-many', events);
    await c.flush();
    const records = await readTopic(hub.url, 'bp-many');
    expect(exactlyOnceProblems(records, 20_000)).toBe('');
  }, 60_000);

  it('a sendMany larger than the outbox goes in as acks make room, and a send made meanwhile lands after it', async () => {
    await createTopic(hub.url, 'bp-many-wait', 1);
    const c = client({ maxOutboxEvents: 50 });
    await c.pending(); // ready: the sendMany goes straight into the memory outbox, the rest as room comes
    const many = c.sendMany(
      'bp-many-wait',
      Array.from({ length: 400 }, (_, n) => ({ key: 'one', value: { n } })),
    );
    // A send from an ack listener: room has just appeared, and the waiting sendMany has not taken it yet.
    let after: Promise<void> | undefined;
    const off = c.on('ack', () => {
      off();
      after = c.send('bp-many-wait', { key: 'one', value: { n: 400 } });
    });
    await many;
    await after;
    await c.flush();
    const records = await readTopic(hub.url, 'bp-many-wait');
    expect(exactlyOnceProblems(records, 401)).toBe('');
    expect(records.map((r) => (r.value as { n: number }).n)).toEqual([...Array(401).keys()]);
  });

  it('a sendMany many times the outbox, bounded by events and by bytes, stores each event once with its own key, value, headers, timestamp and partition', async () => {
    // The part that waits for room is encoded once (staged) and moved in a run at a time, across chunk boundaries.
    await createTopic(hub.url, 'bp-many-staged', 3);
    const c = client({ maxOutboxEvents: 3_000, maxOutboxBytes: 300_000 });
    await c.pending();
    const total = 20_000;
    const ts0 = 1_700_000_000_000;
    const events = Array.from({ length: total }, (_, n) => ({
      key: n % 13 === 0 ? `p${n % 3}` : `k${n % 5}`,
      value: n % 4 === 0 ? new TextEncoder().encode(JSON.stringify({ n, pad: 'b'.repeat(n % 300) })) : { n, pad: 'j'.repeat(n % 90) },
      ...(n % 11 === 0 ? { headers: { h: `v${n}` } } : {}),
      ...(n % 13 === 0 ? { partition: n % 3 } : {}),
      ...(n % 2 === 0 ? { timestamp: ts0 + n } : {}),
    }));
    await c.sendMany('bp-many-staged', events);
    await c.flush();
    // Bytes values come back as base64: read as the JSON they hold.
    const records = (await readTopic(hub.url, 'bp-many-staged')).map((r) => {
      const b64 = (r.value as { $base64?: string }).$base64;
      return b64 === undefined ? r : { ...r, value: JSON.parse(Buffer.from(b64, 'base64').toString()) as unknown };
    });
    expect(exactlyOnceProblems(records, total)).toBe('');
    const wrong: string[] = [];
    for (const r of records) {
      const { n, pad } = r.value as { n: number; pad: string };
      if (pad !== (n % 4 === 0 ? 'b'.repeat(n % 300) : 'j'.repeat(n % 90))) wrong.push(`${n}: value`);
      if (r.key !== (n % 13 === 0 ? `p${n % 3}` : `k${n % 5}`)) wrong.push(`${n}: key ${JSON.stringify(r.key)}`);
      if (JSON.stringify(r.headers) !== JSON.stringify(n % 11 === 0 ? [['h', `v${n}`]] : [])) wrong.push(`${n}: headers ${JSON.stringify(r.headers)}`);
      if (n % 13 === 0 && r.partition !== n % 3) wrong.push(`${n}: partition ${r.partition}`);
      if (n % 2 === 0 && r.timestamp !== ts0 + n) wrong.push(`${n}: timestamp ${r.timestamp}`);
    }
    expect(wrong.slice(0, 10)).toEqual([]);
  }, 120_000);

  it('close() ends a sendMany waiting for room with CLOSED, saying how many went in', async () => {
    const c = createClient({ url: 'ws://127.0.0.1:1/v1/ws', outbox: 'memory', name: `bp-${Math.random()}`, maxOutboxEvents: 4, maxBlockMs: 30_000 });
    await c.pending();
    const waiting = c.sendMany(
      'many-closed',
      Array.from({ length: 10 }, (_, n) => ({ value: n })),
    );
    const t0 = Date.now();
    await c.close();
    expect(await waiting.catch((e) => e)).toMatchObject({ code: 'CLOSED', details: { enqueued: 4 } });
    expect(Date.now() - t0).toBeLessThan(5_000);
  });

  it('sendMany into an offline outbox that cannot take them all says how many went in', async () => {
    const c = client({ url: 'ws://127.0.0.1:1/v1/ws', maxOutboxEvents: 7, maxBlockMs: 100 });
    // An invalid event after valid ones that went straight into the memory outbox's chunk takes them out again.
    await c.sendMany('many-full', [{ value: 'a' }]);
    await expect(c.sendMany('many-full', [{ value: 'b' }, { value: 'c' }, {} as never])).rejects.toMatchObject({ code: 'BAD_RECORD' });
    expect(await c.pending()).toBe(1);
    const err = await c
      .sendMany(
        'many-full',
        Array.from({ length: 10 }, (_, n) => ({ value: n })),
      )
      .catch((e) => e);
    expect(err).toMatchObject({ code: 'OUTBOX_FULL', details: { enqueued: 6 } });
    expect(await c.pending()).toBe(7);
    // A full outbox: the valid first event waits for room only once the rest is valid too.
    await expect(c.sendMany('many-full', [{ value: 'd' }, {} as never])).rejects.toMatchObject({ code: 'BAD_RECORD' });
    expect(await c.pending()).toBe(7);
  });
});
