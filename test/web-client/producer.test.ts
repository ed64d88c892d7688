/**
 * The producer in Node against a real hub: send → outbox → flush, pending
 * counts, validation before the outbox, bounds, and refusals for good that
 * go to the failed list while the rest drains on.
 */
import { describe, expect, it } from 'vitest';
import { startHub } from '../../harness/hub.ts';
import { useHub } from '../../harness/hub-fixture.ts';
import { ClientError, createClient, TributaryError, type Client } from '../../web-client/index.ts';
import { createTopic, exactlyOnceProblems, readTopic } from '../../harness/topic-reader.ts';

const hub = useHub();
const client = (opts: Partial<Parameters<typeof createClient>[0]> = {}): Client => {
  const c = createClient({ url: hub.wsUrl, outbox: 'memory', name: `t-${Math.random()}`, ...opts });
  hub.own(c);
  return c;
};

describe('web client producer (Node, real hub)', () => {
  it('send resolves into the outbox, flush empties it, and the log has every event once in key order', async () => {
    await createTopic(hub.url, 'orders', 3);
    const c = client();
    const sends: Array<Promise<void>> = [];
    for (let n = 0; n < 2_000; n++) sends.push(c.send('orders', { key: `k${n % 7}`, value: { n } }));
    await Promise.all(sends);
    expect(await c.pending()).toBeGreaterThan(0);
    await c.flush();
    expect(await c.pending()).toBe(0);
    const records = await readTopic(hub.url, 'orders');
    expect(exactlyOnceProblems(records, 2_000)).toBe('');
  });

  it('queues while the hub is unreachable and drains once it is there', async () => {
    const c = client({ url: 'ws://127.0.0.1:1/v1/ws', backoffMaxMs: 200 });
    await c.send('offline-topic', { value: { n: 0 } });
    expect(await c.pending()).toBe(1);
    expect(c.state).not.toBe('open');
    await c.close();
  });

  it('an invalid event is refused at send() with a typed error and never enters the outbox', async () => {
    const c = client();
    await expect(c.send('bad topic!', { value: 1 })).rejects.toMatchObject({ code: 'BAD_TOPIC_NAME' });
    await expect(c.send('ok', { value: new Uint8Array(1024 * 1024 + 1) })).rejects.toMatchObject({ code: 'RECORD_TOO_LARGE' });
    await expect(c.send('ok', { key: 'x'.repeat(16 * 1024 + 1), value: 1 })).rejects.toMatchObject({ code: 'RECORD_TOO_LARGE' });
    await expect(c.send('ok', { value: 1, headers: [['h', 5 as unknown as string]] })).rejects.toBeInstanceOf(TributaryError);
    await expect(c.send('ok', {} as never)).rejects.toMatchObject({ code: 'BAD_RECORD' });
    expect(await c.pending()).toBe(0);
  });

  it('a full outbox with maxBlockMs 0 rejects send with OUTBOX_FULL at once', async () => {
    const c = client({ url: 'ws://127.0.0.1:1/v1/ws', maxOutboxEvents: 3, maxBlockMs: 0 });
    for (let i = 0; i < 3; i++) await c.send('full', { value: i });
    const err = await c.send('full', { value: 3 }).catch((e) => e);
    expect(err).toBeInstanceOf(ClientError);
    expect(err.code).toBe('OUTBOX_FULL');
    const small = client({ url: 'ws://127.0.0.1:1/v1/ws', maxOutboxBytes: 200, maxBlockMs: 0 });
    await small.send('full', { value: 'x'.repeat(50) });
    await expect(small.send('full', { value: 'y'.repeat(200) })).rejects.toMatchObject({ code: 'OUTBOX_FULL' });
  });

  it('a record the hub refuses for good moves to failed() with its code and the rest drains on', async () => {
    const c = client();
    const errors: Error[] = [];
    c.on('error', (e) => errors.push(e));
    const future = Date.now() + 365 * 24 * 3600 * 1000;
    for (let n = 0; n < 10; n++) await c.send('refusals', n === 4 ? { value: { n }, timestamp: future } : { value: { n } });
    await c.flush();
    const failed = await c.failed();
    expect(failed.map((f) => (f.rec.v ? JSON.parse(new TextDecoder().decode(f.rec.v)).n : null))).toEqual([4]);
    expect(failed[0].code).toBe('TIMESTAMP_IN_FUTURE');
    expect(errors.some((e) => (e as TributaryError).code === 'TIMESTAMP_IN_FUTURE')).toBe(true);
    const values = (await readTopic(hub.url, 'refusals')).map((r) => (r.value as { n: number }).n);
    expect(values).toEqual([0, 1, 2, 3, 5, 6, 7, 8, 9]);
    await c.clearFailed();
    expect(await c.failed()).toEqual([]);
    // The hub refuses sequence gaps: events after a refused one (in the same batch too) take its number,
    // also after clearFailed().
    const burst: Array<Promise<void>> = [];
    for (let n = 10; n < 40; n++) burst.push(c.send('refusals', n % 10 === 3 ? { value: { n }, timestamp: future } : { value: { n } }));
    await Promise.all(burst);
    await c.flush();
    expect((await c.failed()).length).toBe(3);
    const after = (await readTopic(hub.url, 'refusals')).map((r) => (r.value as { n: number }).n);
    expect(after).toEqual([0, 1, 2, 3, 5, 6, 7, 8, 9, ...Array.from({ length: 30 }, (_, i) => i + 10).filter((n) => n % 10 !== 3)]);
  });

  it('emits ack events with the offsets, and a fresh client on the same memory outbox keeps its producer id', async () => {
    const name = `keep-${Date.now()}`;
    const a = client({ name });
    const acks: number[] = [];
    a.on('ack', (x) => acks.push(...x.records.map((r) => r.offset)));
    await a.send('acks', { value: { n: 0 } });
    await a.flush();
    expect(acks).toEqual([0]);
    const pid = await a.producerId;
    await a.close();
    const b = client({ name });
    expect(await b.producerId).toBe(pid);
  });
});

describe('web client producer against a hub with a small frame limit', () => {
  it('sizes batches to the hub’s maxFrameBytes and fails an event too large for it instead of looping', async () => {
    const small = await startHub({ args: ['--max-frame-bytes', String(64 * 1024)] });
    try {
      const c = createClient({ url: small.wsUrl, outbox: 'memory', name: `frames-${Date.now()}` });
      const errors: string[] = [];
      c.on('error', (e) => errors.push((e as TributaryError).code));
      const states: string[] = [];
      c.on('state', (s) => states.push(s));
      for (let n = 0; n < 300; n++) {
        await c.send('frames', n === 150 ? { value: { n, pad: 'y'.repeat(100 * 1024) } } : { value: { n, pad: 'x'.repeat(1000) } });
      }
      await c.flush();
      expect((await c.failed()).map((f) => f.code)).toEqual(['FRAME_TOO_LARGE']);
      expect(errors).toContain('FRAME_TOO_LARGE');
      expect(states.filter((s) => s === 'open')).toHaveLength(1); // never closed by the hub for an oversized frame
      const ns = (await readTopic(small.url, 'frames')).map((r) => (r.value as { n: number }).n);
      expect(ns).toEqual(Array.from({ length: 300 }, (_, i) => i).filter((i) => i !== 150));
      await c.close();
    } finally {
      await small.stop();
      small.cleanup();
    }
  });
});
