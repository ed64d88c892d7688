/**
 * Subscriptions in Node against a real hub: replay from an offset, then live,
 * across connections cut by a proxy, with no gap and no duplicate; and a
 * persisted position that a later client continues from.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDir } from '../../harness/hub.ts';
import { useHub } from '../../harness/hub-fixture.ts';
import { startTcpProxy, type TcpProxy } from '../../harness/tcp-proxy.ts';
import { createClient, type ConsumedRecord } from '../../web-client/node.ts';
import { createTopic } from '../../harness/topic-reader.ts';
import { waitFor } from '../../harness/wait.ts';

const hub = useHub();
let proxy: TcpProxy;
let dir: string;

beforeAll(async () => {
  proxy = await startTcpProxy(hub.port);
  dir = tempDir('tributary-sub-');
});
afterAll(async () => {
  await proxy?.close();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

const fail = (): never => {
  throw new Error('boom');
};
const until = (cond: () => boolean, timeoutMs = 15_000): Promise<void> => waitFor(cond, timeoutMs, 'records');

describe('web client subscriptions (Node, real hub)', () => {
  it('replay from an offset then live across reconnects: no gap at the seam, no duplicate', async () => {
    await createTopic(hub.url, 'feed', 2);
    const producer = createClient({ url: hub.wsUrl, outbox: 'memory', name: 'feed-producer' });
    for (let n = 0; n < 400; n++) await producer.send('feed', { partition: n % 2, value: { n } });
    await producer.flush();

    // Partition 0 holds even n at offset n/2; start each partition at offset 50.
    const got: ConsumedRecord[] = [];
    const consumer = createClient({ url: proxy.wsUrl, outbox: 'memory', name: 'feed-consumer', backoffInitialMs: 20, backoffMaxMs: 100 });
    let opens = 0;
    consumer.on('state', (s) => void (s === 'open' && opens++));
    const sub = consumer.subscribe('feed', { from: 50, creditBytes: 4096 }, async (r) => {
      got.push(r);
      if (got.length % 37 === 0) await new Promise((res) => setTimeout(res, 1));
    });
    await until(() => got.length >= 300);

    // Live, with the connection cut again and again while the producer goes on.
    for (let round = 0; round < 5; round++) {
      await until(() => opens === round + 1); // connected again since the last cut
      const base = 400 + round * 100;
      for (let n = base; n < base + 50; n++) await producer.send('feed', { partition: n % 2, value: { n } });
      await producer.flush();
      proxy.cutAll(); // while the live records of this round are on their way
      for (let n = base + 50; n < base + 100; n++) await producer.send('feed', { partition: n % 2, value: { n } });
      await producer.flush();
    }
    await until(() => got.length >= 300 + 500);
    await new Promise((r) => setTimeout(r, 200)); // anything extra would show up now
    sub.close();
    await Promise.all([producer.close(), consumer.close()]);

    expect(proxy.cuts).toBeGreaterThanOrEqual(5);
    for (const p of [0, 1]) {
      const offsets = got.filter((r) => r.partition === p).map((r) => r.offset);
      expect(offsets).toEqual(Array.from({ length: 450 - 50 }, (_, i) => 50 + i));
      const ns = got.filter((r) => r.partition === p).map((r) => (r.value as { n: number }).n);
      expect(ns).toEqual(Array.from({ length: 450 - 50 }, (_, i) => (50 + i) * 2 + p));
    }
  }, 40_000);

  it('a persisted position lets the next client continue where the last one stopped', async () => {
    await createTopic(hub.url, 'dash', 1);
    const file = path.join(dir, 'dash.outbox');
    const producer = createClient({ url: hub.wsUrl, outbox: 'memory', name: 'dash-producer' });
    for (let n = 0; n < 50; n++) await producer.send('dash', { value: { n } });
    await producer.flush();

    const first: number[] = [];
    const a = createClient({ url: hub.wsUrl, outbox: { file }, name: 'dash' });
    a.subscribe('dash', { from: 'earliest', persist: 'board' }, (r) => void first.push(r.offset));
    await until(() => first.length === 50);
    await new Promise((r) => setTimeout(r, 100)); // kept: the persisted position has no observable for the test to wait on
    await a.close();

    for (let n = 50; n < 80; n++) await producer.send('dash', { value: { n } });
    await producer.flush();
    const second: number[] = [];
    const b = createClient({ url: hub.wsUrl, outbox: { file }, name: 'dash' });
    b.subscribe('dash', { from: 'earliest', persist: 'board' }, (r) => void second.push(r.offset));
    await until(() => second.length >= 30);
    await new Promise((r) => setTimeout(r, 100)); // proves a negative: nothing before offset 50 or past 79 arrives
    await Promise.all([b.close(), producer.close()]);
    expect(second).toEqual(Array.from({ length: 30 }, (_, i) => 50 + i));
  });

  it('onBatch: one call per records frame, decoded values, no gap and no duplicate across cuts, and a throw stops it with the position before the batch', async () => {
    await createTopic(hub.url, 'bulk', 2);
    const producer = createClient({ url: hub.wsUrl, outbox: 'memory', name: 'bulk-producer' });
    await producer.sendMany(
      'bulk',
      Array.from({ length: 2000 }, (_, n) => ({ partition: n % 2, value: { n } })),
    );
    await producer.flush();

    const got: ConsumedRecord[] = [];
    let calls = 0;
    const consumer = createClient({ url: proxy.wsUrl, outbox: 'memory', name: 'bulk-consumer', backoffInitialMs: 20, backoffMaxMs: 100 });
    expect(() => consumer.subscribe('bulk', { from: 'earliest' })).toThrow(/one of a record handler, onBatch or onView/);
    expect(() => consumer.subscribe('bulk', { onBatch: () => undefined, onView: () => undefined })).toThrow(/one of a record handler, onBatch or onView/);
    const sub = consumer.subscribe('bulk', {
      from: 'earliest',
      creditBytes: 8192,
      onBatch: async (records) => {
        calls++;
        expect(new Set(records.map((r) => r.partition)).size).toBe(1);
        got.push(...records);
        await new Promise((res) => setTimeout(res, 1));
      },
    });
    await until(() => got.length >= 600);
    proxy.cutAll();
    await until(() => got.length >= 2000);
    await new Promise((r) => setTimeout(r, 200)); // anything extra would show up now
    sub.close();
    for (const p of [0, 1]) {
      const mine = got.filter((r) => r.partition === p);
      expect(mine.map((r) => r.offset)).toEqual(Array.from({ length: 1000 }, (_, i) => i));
      expect(mine.map((r) => (r.value as { n: number }).n)).toEqual(Array.from({ length: 1000 }, (_, i) => i * 2 + p));
    }
    expect(calls).toBeLessThan(got.length / 10); // batches, not records

    // lazyValues: the same records, each value decoded when read, its stored bytes at hand, a plain copy by toJSON.
    const lazy: ConsumedRecord[] = [];
    const lazySub = consumer.subscribe('bulk', { from: 'earliest', partitions: [1], lazyValues: true, onBatch: (rs) => void lazy.push(...rs) });
    await until(() => lazy.length >= 1000);
    lazySub.close();
    expect(lazy[7].valueEncoding).toBe('json');
    expect(new TextDecoder().decode(lazy[7].valueBytes!)).toBe(JSON.stringify({ n: 15 }));
    expect(lazy.map((r) => (r.value as { n: number }).n)).toEqual(Array.from({ length: 1000 }, (_, i) => i * 2 + 1));
    expect(JSON.parse(JSON.stringify(lazy[7]))).toEqual({ topic: 'bulk', partition: 1, offset: 7, timestamp: lazy[7].timestamp, key: null, value: { n: 15 }, headers: [] });

    // onView: the same records as columns of one view per frame (no object per record), valid during the call.
    const viewed: Array<{ offset: number; n: number; bytes: string }> = [];
    const viewSub = consumer.subscribe('bulk', {
      from: 500,
      partitions: [1],
      onView: (v) => {
        expect(v.partition).toBe(1);
        for (let i = 0; i < v.count; i++) viewed.push({ offset: v.offset(i), n: (v.value(i) as { n: number }).n, bytes: new TextDecoder().decode(v.valueBytes(i)!) });
      },
    });
    await until(() => viewed.length >= 500);
    expect(viewSub.positions()).toEqual({ 1: 1000 });
    viewSub.close();
    expect(viewed.map((r) => r.offset)).toEqual(Array.from({ length: 500 }, (_, i) => 500 + i));
    expect(viewed.map((r) => r.n)).toEqual(Array.from({ length: 500 }, (_, i) => (500 + i) * 2 + 1));
    expect(viewed[3].bytes).toBe(JSON.stringify({ n: 1007 }));

    // A throwing batch handler stops the subscription; its position stays before the batch.
    const errors: Error[] = [];
    consumer.on('error', (e) => void errors.push(e));
    const seen: number[] = [];
    const failing = consumer.subscribe('bulk', {
      from: 'earliest',
      partitions: [0],
      onBatch: (records) => {
        seen.push(records.length);
        throw new Error('boom');
      },
    });
    await until(() => errors.length === 1);
    expect(seen.length).toBe(1);
    expect(failing.positions()['0'] ?? 0).toBe(0);

    // A record handler that throws (synchronously, or by rejecting) stops at that record: the ones before it count.
    for (const name of ['sync', 'async'] as const) {
      const before = errors.length;
      const handled: number[] = [];
      const stopAt20 = (r: ConsumedRecord): void => {
        if ((r.value as { n: number }).n === 20) fail();
        handled.push(r.offset);
      };
      const s =
        name === 'sync'
          ? consumer.subscribe('bulk', { from: 'earliest', partitions: [0] }, stopAt20)
          : consumer.subscribe('bulk', { from: 'earliest', partitions: [0] }, async (r) => {
              await Promise.resolve();
              stopAt20(r);
            });
      await until(() => errors.length === before + 1);
      expect(errors[before].message, name).toMatch(/handler threw at partition 0 offset 10: boom/);
      expect(handled, name).toEqual(Array.from({ length: 10 }, (_, i) => i));
      expect(s.positions()['0'], name).toBe(10);
    }
    await Promise.all([producer.close(), consumer.close()]);
  });
});
