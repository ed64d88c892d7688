/**
 * Produce and subscribe over a real hub process and real WebSockets:
 * acks, every start position, replay then live without gap or duplicate,
 * per-key order across partitions.
 */
import { describe, expect, it } from 'vitest';
import { ackOffsets } from '../../protocol/frames.ts';
import { useHub } from '../../harness/hub-fixture.ts';
import { bytes, text, WsClient } from '../helpers/ws-client.ts';
import { waitFor } from '../../harness/wait.ts';

const hub = useHub();

async function client(): Promise<WsClient> {
  const c = await WsClient.connect(hub.wsUrl);
  hub.own(c);
  return c;
}

async function createTopic(name: string, partitions: number): Promise<void> {
  const res = await fetch(`${hub.url}/v1/topics`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name, partitions }) });
  expect(res.status).toBe(201);
}

describe('produce', () => {
  it('acks only after append, with one part per partition and offsets in record order', async () => {
    const c = await client();
    const hello = await c.hello();
    expect(hello.v).toBe(1);
    const ack = await c.produce('orders', [{ k: 'a', v: bytes('1') }, { k: 'a', v: bytes('2') }, { v: bytes('3') }]);
    expect(ack.t).toBe('ack');
    expect(ack.parts).toEqual([{ p: 0, o: 0 }]); // auto-created with 1 partition: consecutive offsets, no r/offs
    const ack2 = await c.produce('orders', [{ v: bytes('4') }]);
    expect(ack2.parts).toEqual([{ p: 0, o: 3 }]);
  });

  it('spreads a request over partitions by key and says where each record landed', async () => {
    await createTopic('spread', 4);
    const c = await client();
    const records = Array.from({ length: 40 }, (_, i) => ({ k: `key-${i}`, v: bytes(String(i)) }));
    const ack = await c.produce('spread', records);
    expect(ack.parts.length).toBeGreaterThan(1);
    const where = ackOffsets(ack, records.length);
    expect(where.every((w) => w !== undefined)).toBe(true);
    const per = new Map<number, number[]>();
    for (const w of where) per.set(w.partition, [...(per.get(w.partition) ?? []), w.offset]);
    for (const offs of per.values()) expect(offs).toEqual(offs.map((_, i) => i));
  });

  it('a produce that auto-creates a topic while an HTTP create of it is under way waits for that create', async () => {
    // Two app instances starting at once: one creates its internal topic over HTTP while the other's
    // first produce asks for it. The produce must get the created topic, not TOPIC_EXISTS.
    const c = await client();
    const names = Array.from({ length: 24 }, (_, i) => `race-${i}`);
    const outcomes = await Promise.all(
      names.map(async (name, i) => {
        const create = fetch(`${hub.url}/v1/topics`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name, partitions: 3 }) });
        // The HTTP request takes a new connection: spread the produces over the create's few milliseconds.
        await new Promise((r) => setTimeout(r, i % 8));
        const produced = c.produce(name, [{ k: 'k', v: bytes('1') }]).then(
          () => 'ok',
          (err: { code?: string }) => err.code ?? 'error',
        );
        return { status: (await create).status, produced: await produced };
      }),
    );
    for (const o of outcomes) expect(o.produced).toBe('ok');
    for (const o of outcomes) expect([201, 409]).toContain(o.status);
  });

  it('refuses a timestamp too far in the future and an unknown partition', async () => {
    const c = await client();
    await expect(c.produce('orders', [{ v: bytes('x'), ts: Date.now() + 2 * 3600_000 }])).rejects.toMatchObject({ code: 'TIMESTAMP_IN_FUTURE' });
    await expect(c.produce('orders', [{ v: bytes('x'), p: 7 }])).rejects.toMatchObject({ code: 'BAD_PARTITION' });
  });
});

describe('subscribe', () => {
  it('starts from earliest, latest, an offset and a timestamp', async () => {
    await createTopic('positions', 1);
    const p = await client();
    const t0 = Date.now();
    for (let i = 0; i < 5; i++) await p.produce('positions', [{ v: bytes(`a${i}`) }]);
    // Kept: these put the two halves' append times apart, so that tMid falls between them (nothing to wait for).
    await new Promise((r) => setTimeout(r, 30));
    const tMid = Date.now();
    await new Promise((r) => setTimeout(r, 5));
    for (let i = 0; i < 5; i++) await p.produce('positions', [{ v: bytes(`b${i}`) }]);

    const c = await client();
    const early = await c.subscribe('positions', { from: 'earliest' });
    expect(early.partitions).toEqual([{ p: 0, offset: 0, hw: 10 }]);
    expect((await c.waitForRecords(early.sub, 10)).map((r) => r.offset)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);

    const fromOffset = await c.subscribe('positions', { from: { offset: 7 } });
    expect((await c.waitForRecords(fromOffset.sub, 3)).map((r) => r.offset)).toEqual([7, 8, 9]);

    const byTime = await c.subscribe('positions', { from: { timestamp: tMid } });
    expect(byTime.partitions[0].offset).toBe(5);
    expect((await c.waitForRecords(byTime.sub, 5)).map((r) => text(r.value))).toEqual(['b0', 'b1', 'b2', 'b3', 'b4']);

    const late = await c.subscribe('positions', { from: 'latest' });
    expect(late.partitions[0].offset).toBe(10);
    await p.produce('positions', [{ v: bytes('live') }]);
    const live = await c.waitForRecords(late.sub, 1);
    expect(live.map((r) => [r.offset, text(r.value)])).toEqual([[10, 'live']]);
    expect(t0).toBeLessThan(tMid);

    await expect(c.subscribe('positions', { from: { offset: 99 } })).rejects.toMatchObject({ code: 'OFFSET_OUT_OF_RANGE' });
    const clamped = await c.subscribe('positions', { from: { offset: 99 }, onOutOfRange: 'latest' });
    expect(clamped.partitions[0].offset).toBe(11);
  });

  it('resumes from per-partition positions', async () => {
    await createTopic('resume', 2);
    const p = await client();
    await p.produce('resume', [
      { v: bytes('0a'), p: 0 },
      { v: bytes('0b'), p: 0 },
      { v: bytes('0c'), p: 0 },
      { v: bytes('1a'), p: 1 },
      { v: bytes('1b'), p: 1 },
    ]);
    const c = await client();
    const s = await c.subscribe('resume', { from: 'earliest', positions: { '0': 2, '1': 1 } });
    const recs = await c.waitForRecords(s.sub, 2);
    expect(recs.map((r) => text(r.value)).sort()).toEqual(['0c', '1b']);
  });

  it('replays then goes live with no gap and no duplicate while producers keep writing', async () => {
    await createTopic('seam', 3);
    const producers = await Promise.all([client(), client()]);
    let stop = false;
    let sent = 0;
    const write = async (c: WsClient, name: string): Promise<void> => {
      let i = 0;
      while (!stop) {
        const batch = Array.from({ length: 5 }, () => ({ k: `${name}-${i % 7}`, v: bytes(`${name}:${i++}`) }));
        await c.produce('seam', batch);
        sent += batch.length;
      }
    };
    const writers = producers.map((c, n) => write(c, `w${n}`));
    await waitFor(() => sent >= 500, 30_000, 'some records written before subscribing');
    // Subscribe mid-stream, from the beginning: the replay and the live tail meet while writes go on.
    const c = await client();
    const s = await c.subscribe('seam', { from: 'earliest' });
    const atSubscribe = sent;
    await waitFor(() => sent >= atSubscribe + 500, 30_000, 'writes going on after the subscription');
    stop = true;
    await Promise.all(writers);
    await c.waitForRecords(s.sub, sent, 15_000);
    const recs = c.records(s.sub);
    expect(recs.length).toBe(sent);
    for (let p = 0; p < 3; p++) {
      const offs = recs.filter((r) => r.partition === p).map((r) => r.offset);
      expect(offs).toEqual(offs.map((_, i) => i)); // dense, in order, once each
    }
  });

  it('keeps per-key order across partitions', async () => {
    await createTopic('keys', 4);
    const p = await client();
    const keys = ['alpha', 'beta', 'gamma', 'delta', 'epsilon', 'zeta'];
    for (let round = 0; round < 20; round++) {
      await p.produce(
        'keys',
        keys.map((k) => ({ k, v: bytes(`${k}:${round}`) })),
      );
    }
    const c = await client();
    const s = await c.subscribe('keys', { from: 'earliest' });
    const recs = await c.waitForRecords(s.sub, keys.length * 20);
    for (const k of keys) {
      const mine = recs.filter((r) => r.key === k);
      expect(new Set(mine.map((r) => r.partition)).size).toBe(1);
      expect(mine.map((r) => text(r.value))).toEqual(Array.from({ length: 20 }, (_, i) => `${k}:${i}`));
    }
  });

  it('keeps each records frame of one flush whole: several subscriptions and partitions, batches of different sizes', async () => {
    // The hub writes every records frame of a flush into one shared buffer, right before uWS's send: a frame
    // sent from it must carry its own batches, not the next frame's (the CRC check in decodeBatches fails else).
    // And a 1.2 MB batch queued puts the connection over its send mark for the other partitions and
    // subscriptions of the same turn: they must be woken after the flush (they stopped for good before).
    await createTopic('flushes', 4);
    const p = await client();
    const expected: string[][] = [[], [], [], []];
    for (let round = 0; round < 3; round++) {
      for (let part = 0; part < 4; part++) {
        const size = [10, 2_000, 60_000, 300_000][(part + round) % 4];
        const batch = Array.from({ length: 4 }, (_, i) => `p${part}r${round}i${i}:` + String.fromCharCode(97 + ((part + round + i) % 26)).repeat(size));
        await p.produce(
          'flushes',
          batch.map((v) => ({ v: bytes(v), p: part })),
        );
        expected[part].push(...batch);
      }
    }
    const [a, b] = await Promise.all([client(), client()]);
    const subs = await Promise.all([a.subscribe('flushes', { from: 'earliest' }), a.subscribe('flushes', { from: 'earliest' }), b.subscribe('flushes', { from: 'earliest' })]);
    const readers = [a, a, b];
    for (const [i, s] of subs.entries()) {
      const recs = await readers[i].waitForRecords(s.sub, 48, 15_000);
      expect(recs.length).toBe(48);
      for (let part = 0; part < 4; part++) expect(recs.filter((r) => r.partition === part).map((r) => text(r.value))).toEqual(expected[part]);
    }
  });

  it('follows partitions added to the topic, and ends with UNKNOWN_TOPIC when the topic is deleted', async () => {
    await createTopic('growing', 1);
    const c = await client();
    const s = await c.subscribe('growing', { from: 'earliest' });
    const patch = await fetch(`${hub.url}/v1/topics/growing`, { method: 'PATCH', body: JSON.stringify({ partitions: 2 }) });
    expect(patch.status).toBe(200);
    const p = await client();
    await p.produce('growing', [
      { v: bytes('on p1'), p: 1 },
      { v: bytes('on p0'), p: 0 },
    ]);
    const recs = await c.waitForRecords(s.sub, 2);
    expect(recs.map((r) => [r.partition, text(r.value)]).sort()).toEqual([
      [0, 'on p0'],
      [1, 'on p1'],
    ]);

    expect((await fetch(`${hub.url}/v1/topics/growing`, { method: 'DELETE' })).status).toBe(204);
    await c.until(() => c.errors(s.sub).length > 0);
    expect(c.errors(s.sub)[0]).toMatchObject({ code: 'UNKNOWN_TOPIC', sub: s.sub });
    await expect(c.unsubscribe(s.sub)).rejects.toMatchObject({ code: 'UNKNOWN_SUBSCRIPTION' });
  });
});
