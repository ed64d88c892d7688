/**
 * The file outbox's journal (web-client/outbox-file.ts) on a real file:
 * writes issued together (not awaited one by one) hand out distinct ids and
 * dense sequences per topic and partition and share fdatasyncs (the calls
 * queued behind a write on its way to disk go in the next one), an assignment repeated changes
 * nothing, a torn last entry never happened, and a reopen reads back the
 * same events, assignments, failures and positions. send()'s direct path
 * (`sendDirect`) writes a tick's events as one journal group with one shared
 * promise, keeps them packed until read, and numbers them in step with
 * append().
 */
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { toOutboxRecord } from '../../web-client/event-input.ts';
import { FileOutboxStore } from '../../web-client/outbox-file.ts';
import type { NewOutboxEvent, OutboxEvent } from '../../web-client/outbox.ts';

const BOUNDS = { maxEvents: 100_000, maxBytes: 64 * 1024 * 1024 };

/** Counts fdatasyncs on the FileHandle class the store's handles are of (observed, not replaced) until restore(). */
async function countDatasyncs(dir: string): Promise<{ count: number; restore: () => void }> {
  const probe = await fsp.open(path.join(dir, 'probe'), 'w');
  const proto = Object.getPrototypeOf(probe) as { datasync: () => Promise<void> };
  await probe.close();
  const datasync = proto.datasync;
  const counter = { count: 0, restore: () => void (proto.datasync = datasync) };
  proto.datasync = function (this: unknown) {
    counter.count++;
    return datasync.call(this);
  };
  return counter;
}

function entries(topic: string, from: number, n: number): NewOutboxEvent[] {
  const out: NewOutboxEvent[] = [];
  for (let i = from; i < from + n; i++) out.push({ topic, sub: '', ...toOutboxRecord(topic, { key: `k${i % 5}`, value: { i } }, 1_700_000_000_000, true) });
  return out;
}

/** What a reopen must give back: per event, its id, topic, partition, sequence and value. */
function shape(events: OutboxEvent[]): string[] {
  return events.map((e) => `${e.id} ${e.topic} ${e.p} ${e.seq} ${new TextDecoder().decode(e.rec.v!)}`);
}

describe('file outbox journal', () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'outbox-file-'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('writes issued together get distinct ids and dense sequences, and read back the same after a reopen', async () => {
    const file = path.join(dir, 'o.outbox');
    const s = new FileOutboxStore(file);
    await s.open();
    // Four appends in one tick: each must see the ids the ones before it took.
    const appended = await Promise.all([s.append(entries('a', 0, 50), BOUNDS), s.append(entries('b', 0, 50), BOUNDS), s.append(entries('a', 50, 50), BOUNDS), s.append(entries('b', 50, 50), BOUNDS)]);
    const ids = appended.flat().map((e) => e!.id);
    expect(ids).toEqual(Array.from({ length: 200 }, (_, i) => i + 1));
    const all = await s.read(0, 1_000);
    const a = all.filter((e) => e.topic === 'a');
    const b = all.filter((e) => e.topic === 'b');
    // Assignments in one tick: some of topic a, the same again (it changes nothing and takes no sequence:
    // the ones after it must not skip any), then the rest of both topics in one call, in id order.
    const part = (e: OutboxEvent) => e.id % 3;
    await Promise.all([
      s.assign(a.slice(0, 60).map((e) => ({ event: e, p: part(e) }))),
      s.assign(a.slice(0, 60).map((e) => ({ event: e, p: 0 }))),
      s.assign([...b, ...a.slice(60)].sort((x, y) => x.id - y.id).map((e) => ({ event: e, p: part(e) }))),
    ]);
    const assigned = await s.read(0, 1_000);
    for (const topic of ['a', 'b']) {
      for (let p = 0; p < 3; p++) {
        const lane = assigned.filter((e) => e.topic === topic && e.p === p);
        expect(
          lane.map((e) => e.seq),
          `${topic}/${p}`,
        ).toEqual(lane.map((_, i) => i));
        expect(lane.every((e) => part(e) === p)).toBe(true);
      }
    }
    // Removals and failures in one tick, one of them twice.
    await Promise.all([s.remove(assigned.slice(0, 30)), s.fail(assigned.slice(30, 40), 'TEST', 'refused'), s.remove(assigned.slice(0, 30)), s.savePositions('r', { 'a/0': 7 })]);
    const left = await s.read(0, 1_000);
    expect(left.map((e) => e.id)).toEqual(ids.slice(40));
    expect((await s.stats()).events).toBe(160);
    await s.close();

    const again = new FileOutboxStore(file);
    await again.open();
    expect(shape(await again.read(0, 1_000))).toEqual(shape(left));
    expect((await again.failed()).map((e) => e.id)).toEqual(ids.slice(30, 40));
    expect(await again.loadPositions('r')).toEqual({ 'a/0': 7 });
    // The next append and assignment continue after what is on disk.
    const [next] = await again.append(entries('a', 100, 1), BOUNDS);
    expect(next!.id).toBe(201);
    const [n] = await again.assign([{ event: next!, p: part(next!) }]);
    expect(n.seq).toBe(assigned.filter((e) => e.topic === 'a' && e.p === part(next!)).length);
    await again.close();
  });

  it('calls queued behind a write on its way to disk share the next write and its fdatasync', async () => {
    const file = path.join(dir, 'o.outbox');
    const s = new FileOutboxStore(file);
    await s.open();
    const syncs = await countDatasyncs(dir);
    try {
      // The first goes to disk alone; the nine called meanwhile are one group: one writev, one fdatasync.
      const appended = await Promise.all(Array.from({ length: 10 }, (_, k) => s.append(entries(k % 2 ? 'a' : 'b', k * 10, 10), BOUNDS)));
      expect(syncs.count).toBe(2);
      expect(appended.flat().map((e) => e!.id)).toEqual(Array.from({ length: 100 }, (_, i) => i + 1));
      // Assignments, a removal and positions in one tick: sequences dense across the group's assignments.
      const all = await s.read(0, 1_000);
      syncs.count = 0;
      await Promise.all([
        s.assign(all.slice(0, 30).map((e) => ({ event: e, p: 0 }))),
        s.assign(all.slice(30, 60).map((e) => ({ event: e, p: 0 }))),
        s.assign(all.slice(20, 70).map((e) => ({ event: e, p: 1 }))),
        s.savePositions('r', { 'a/0': 1 }),
      ]);
      expect(syncs.count).toBe(2);
      await s.remove(all.slice(0, 5));
    } finally {
      syncs.restore();
    }
    const left = await s.read(0, 1_000);
    for (const topic of ['a', 'b']) {
      const p0 = left.filter((e) => e.topic === topic && e.p === 0 && e.id <= 60);
      // Ids 1-10 are b's, 11-20 a's, and so on; the removed ids 1-5 took b's sequences 0-4.
      expect(p0.map((e) => e.seq)).toEqual(p0.map((_, i) => i + (topic === 'b' ? 5 : 0)));
    }
    // Those the third call asked for that the first two had taken stay as they were; the rest are on partition 1.
    expect(left.filter((e) => e.id > 60 && e.id <= 70).every((e) => e.p === 1)).toBe(true);
    await s.close();
    const again = new FileOutboxStore(file);
    await again.open();
    expect(shape(await again.read(0, 1_000))).toEqual(shape(left));
    await again.close();
  });

  it('a crash in the middle of the last entry leaves the entries before it whole and the torn one never happened', async () => {
    const file = path.join(dir, 'o.outbox');
    const s = new FileOutboxStore(file);
    await s.open();
    await s.append(entries('a', 0, 10), BOUNDS);
    const before = fs.statSync(file).size;
    // Two appends in one tick: two framed entries.
    await Promise.all([s.append(entries('a', 10, 10), BOUNDS), s.append(entries('a', 20, 10), BOUNDS)]);
    const grown = fs.statSync(file).size;
    await s.close();
    expect(grown).toBeGreaterThan(before);
    // The last write torn a few bytes before its end (a SIGKILL mid-write): the second entry never happened.
    fs.truncateSync(file, grown - 5);
    const again = new FileOutboxStore(file);
    await again.open();
    expect((await again.read(0, 100)).map((e) => e.id)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    // The torn bytes are gone: the next entry is appended where the good ones end, and reads back.
    await again.append(entries('a', 30, 5), BOUNDS);
    await again.close();
    const third = new FileOutboxStore(file);
    await third.open();
    const ids = (await third.read(0, 100)).map((e) => e.id);
    expect(ids).toEqual(Array.from({ length: 25 }, (_, i) => i + 1));
    await third.close();
  });

  it('send() calls written straight into a journal group share its promise and fdatasync, read back in order, and number in step with append()', async () => {
    const file = path.join(dir, 'o.outbox');
    const s = new FileOutboxStore(file);
    await s.open();
    const syncs = await countDatasyncs(dir);
    const now = 1_700_000_000_000;
    const n = 10_000;
    const promises = new Set<Promise<void>>();
    try {
      const calls: Array<Promise<void> | undefined> = [];
      for (let i = 0; i < n; i++) calls.push(s.sendDirect('a', 'sub-1', { key: `k${i % 5}`, value: { i } }, now, BOUNDS));
      // An invalid event throws at the call and takes no id; the next one goes in.
      expect(() => s.sendDirect('a/b', 'sub-1', { value: 1 }, now, BOUNDS)).toThrow();
      calls.push(s.sendDirect('b', '', { value: 'last' }, now, BOUNDS));
      for (const c of calls) promises.add(c!);
      // Groups of at most 8,192 events, each one promise, all in one writev and one fdatasync.
      expect(promises.size).toBe(2);
      await Promise.all(calls);
      expect(syncs.count).toBe(1);
    } finally {
      syncs.restore();
    }
    expect(await s.stats()).toMatchObject({ events: n + 1, lastId: n + 1 });
    expect(await s.countThrough(5_000)).toBe(5_000);
    // While an append() is numbering, the direct path takes nothing (undefined): it would race its ids.
    const appending = s.append(entries('a', n, 3), BOUNDS);
    expect(s.sendDirect('a', 'sub-1', { value: 1 }, now, BOUNDS)).toBeUndefined();
    expect((await appending).map((e) => e!.id)).toEqual([n + 2, n + 3, n + 4]);
    expect(await s.sendDirect('a', 'sub-1', { key: 'k', value: { i: 'after' } }, now, BOUNDS)).toBeUndefined();
    // No room: nothing stored, the caller waits on the usual path.
    expect(s.sendDirect('a', '', { value: 1 }, now, { maxEvents: n + 5, maxBytes: BOUNDS.maxBytes })).toBeUndefined();
    const all = await s.read(0, 2 * n);
    expect(all.map((e) => e.id)).toEqual(Array.from({ length: n + 5 }, (_, i) => i + 1));
    expect(all[0]).toMatchObject({ topic: 'a', sub: 'sub-1', p: -1, seq: -1, rec: { k: 'k0', ts: now } });
    expect(new TextDecoder().decode(all[n - 1].rec.v!)).toBe(JSON.stringify({ i: n - 1 }));
    expect(all[n]).toMatchObject({ topic: 'b', sub: '' });
    // Assigned and removed like any event, and the same after a reopen.
    await s.assign(all.slice(0, 100).map((e) => ({ event: e, p: e.id % 2 })));
    await s.remove(all.slice(0, 50));
    const left = await s.read(0, 2 * n);
    await s.close();
    const again = new FileOutboxStore(file);
    await again.open();
    expect(shape(await again.read(0, 2 * n))).toEqual(shape(left));
    expect(await again.stats()).toMatchObject({ events: n + 5 - 50, lastId: n + 5 });
    await again.close();
  });

  it('a snapshot taken while written groups are partly read copies the unread events from their bytes; failures keep their values', async () => {
    const file = path.join(dir, 'o.outbox');
    const s = new FileOutboxStore(file);
    await s.open();
    const now = 1_700_000_000_000;
    const n = 9_000; // two groups; runs of topics and subjects, so the unread part starts with "the previous event's"
    const calls: Array<Promise<void> | undefined> = [];
    for (let i = 0; i < n; i++) calls.push(s.sendDirect(i % 7 < 4 ? 'a' : 'b', i % 11 < 6 ? 'u1' : '', { key: `k${i % 5}`, value: { i } }, now, BOUNDS));
    await Promise.all(calls);
    const head = await s.read(0, 1_234);
    await s.assign(head.slice(0, 600).map((e) => ({ event: e, p: e.id % 3 })));
    await s.fail(head.slice(600, 610), 'TOO_LARGE', 'no');
    await (s as unknown as { compact(): Promise<void> }).compact();
    const all = await s.read(0, 2 * n);
    const failed = await s.failed();
    await s.close();
    const again = new FileOutboxStore(file);
    await again.open();
    const back = await again.read(0, 2 * n);
    const full = (evs: OutboxEvent[]) => evs.map((e) => `${shape([e])[0]} ${e.sub} ${String(e.rec.k)} ${e.rec.ts}`);
    expect(back.length).toBe(n - 10);
    expect(full(back)).toEqual(full(all));
    const fails = await again.failed();
    expect(fails.map((f) => new TextDecoder().decode(f.rec.v!))).toEqual(failed.map((f) => new TextDecoder().decode(f.rec.v!)));
    expect(new TextDecoder().decode(fails[0].rec.v!)).toBe(JSON.stringify({ i: 600 }));
    await again.close();
  });

  it('a sendMany written straight into a journal group is all in or, with an invalid event, none in; past the bounds only the prefix that fits', async () => {
    const file = path.join(dir, 'o.outbox');
    const s = new FileOutboxStore(file);
    await s.open();
    const now = 1_700_000_000_000;
    const many = (from: number, n: number) => Array.from({ length: n }, (_, i) => ({ key: `k${(from + i) % 5}`, value: { i: from + i } }));
    const first = s.sendManyDirect('a', 'u', many(0, 100), now, BOUNDS)!;
    expect(first.stored).toBe(100);
    // An invalid event in the middle: the call throws and none of its events is in (nor its ids taken).
    expect(() => s.sendManyDirect('a', 'u', [...many(100, 10), { value: 1, partition: -1 }, ...many(110, 10)], now, BOUNDS)).toThrow();
    // Room for 150 events: 50 of the next 100 go in, the rest are the caller's to queue.
    const second = s.sendManyDirect('a', 'u', many(100, 100), now, { maxEvents: 150, maxBytes: BOUNDS.maxBytes })!;
    expect(second.stored).toBe(50);
    expect(second.done).toBe(first.done); // the same write
    await second.done;
    const all = await s.read(0, 1_000);
    expect(all.map((e) => e.id)).toEqual(Array.from({ length: 150 }, (_, i) => i + 1));
    expect(all.map((e) => JSON.parse(new TextDecoder().decode(e.rec.v!)).i)).toEqual(Array.from({ length: 150 }, (_, i) => i));
    await s.close();
    const again = new FileOutboxStore(file);
    await again.open();
    expect(shape(await again.read(0, 1_000))).toEqual(shape(all));
    await again.close();
  });
});
