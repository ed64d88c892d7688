import { describe, expect, it } from 'vitest';
import { makeBatch, openStore, readAll, useStoreFixture } from '../helpers/store.ts';

const fx = useStoreFixture();

const batch = (pid: string, seq: number, count = 3) => makeBatch({ producerId: pid, baseSequence: seq, count, tag: `${pid}-${seq}` });

describe('idempotent producers', () => {
  it('a retry of a recent batch returns the original offsets and appends nothing', async () => {
    fx.store = await openStore(fx.dir);
    await fx.store.createTopic('t', 1);
    const first = await fx.store.append('t', 0, batch('p1', 0));
    await fx.store.append('t', 0, batch('p2', 0));
    const retry = await fx.store.append('t', 0, batch('p1', 0));
    expect(retry).toMatchObject({ duplicate: true, baseOffset: first.baseOffset, offsets: first.offsets, appendTime: first.appendTime });
    expect(fx.store.offsets('t', 0).logEnd).toBe(6);
    expect(fx.store.lastSequence('t', 0, 'p1')).toBe(2);
    expect(fx.store.lastSequence('t', 0, 'nobody')).toBe(-1);
  });

  it('sequences may skip (other partitions) but never overlap or go back', async () => {
    fx.store = await openStore(fx.dir);
    await fx.store.createTopic('t', 1);
    await fx.store.append('t', 0, batch('p', 0));
    await fx.store.append('t', 0, batch('p', 10));
    await expect(fx.store.append('t', 0, batch('p', 11, 5))).rejects.toMatchObject({ code: 'BAD_SEQUENCE' });
    expect((await fx.store.append('t', 0, batch('p', 13))).duplicate).toBe(false);
  });

  it('a retry older than the cached batches is found in the log, also after a restart', async () => {
    fx.store = await openStore(fx.dir);
    await fx.store.createTopic('t', 1, { segmentBytes: 1024 });
    const acks = [];
    for (let i = 0; i < 20; i++) acks.push(await fx.store.append('t', 0, batch('p', i * 3)));
    const old = await fx.store.append('t', 0, batch('p', 6));
    expect(old).toMatchObject({ duplicate: true, offsets: acks[2].offsets, appendTime: acks[2].appendTime });
    await fx.store.close();
    fx.store = await openStore(fx.dir);
    expect(fx.store.lastSequence('t', 0, 'p')).toBe(59);
    const again = await fx.store.append('t', 0, batch('p', 3));
    expect(again).toMatchObject({ duplicate: true, offsets: acks[1].offsets });
    const recent = await fx.store.append('t', 0, batch('p', 57));
    expect(recent).toMatchObject({ duplicate: true, offsets: acks[19].offsets });
    expect(fx.store.offsets('t', 0).logEnd).toBe(60);
    expect(await fx.store.append('t', 0, batch('p', 60))).toMatchObject({ duplicate: false, baseOffset: 60 });
  });

  it('producer state survives a crash without a fresh snapshot (rebuilt from batch headers)', async () => {
    fx.store = await openStore(fx.dir, { snapshotIntervalBytes: 1 << 30 });
    await fx.store.createTopic('t', 1);
    for (let i = 0; i < 5; i++) await fx.store.append('t', 0, batch('p', i * 3));
    // Simulate a crash: drop the store without close() (no final snapshot), release the lock by hand.
    const { rmSync, readdirSync } = await import('node:fs');
    const path = await import('node:path');
    const crashed = fx.store;
    fx.store = null;
    void crashed;
    rmSync(path.join(fx.dir, '@lock'));
    for (const f of readdirSync(path.join(fx.dir, 't', '0'))) if (f.endsWith('.snapshot')) rmSync(path.join(fx.dir, 't', '0', f));
    fx.store = await openStore(fx.dir);
    expect(fx.store.lastSequence('t', 0, 'p')).toBe(14);
    expect(await fx.store.append('t', 0, batch('p', 6))).toMatchObject({ duplicate: true, baseOffset: 6 });
    await crashed.close().catch(() => undefined);
  });

  it('a duplicate of a batch still in flight resolves only once the original is durable', async () => {
    fx.store = await openStore(fx.dir);
    await fx.store.createTopic('t', 1);
    const order: string[] = [];
    const a = fx.store.append('t', 0, batch('p', 0)).then((r) => (order.push('original'), r));
    const b = fx.store.append('t', 0, batch('p', 0)).then((r) => (order.push('retry'), r));
    const [ra, rb] = await Promise.all([a, b]);
    expect(order).toEqual(['original', 'retry']);
    expect(rb).toMatchObject({ duplicate: true, offsets: ra.offsets });
  });

  it('with a bounded producer table, an evicted producer is looked up in the log', async () => {
    fx.store = await openStore(fx.dir, { maxProducersPerPartition: 2 });
    await fx.store.createTopic('t', 1);
    const first = await fx.store.append('t', 0, batch('a', 0));
    await fx.store.append('t', 0, batch('b', 0));
    await fx.store.append('t', 0, batch('c', 0));
    await fx.store.append('t', 0, batch('d', 0));
    expect(await fx.store.append('t', 0, batch('a', 0))).toMatchObject({ duplicate: true, offsets: first.offsets });
    await expect(fx.store.append('t', 0, batch('a', 2))).rejects.toMatchObject({ code: 'BAD_SEQUENCE' });
    expect(await fx.store.append('t', 0, batch('a', 3))).toMatchObject({ duplicate: false });
    expect((await readAll(fx.store, 't')).length).toBe(15);
  });
});
