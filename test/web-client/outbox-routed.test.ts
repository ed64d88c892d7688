/**
 * Routed chunks (events written at the call straight into their
 * partitions' batches) seal to the very bytes a plain chunk of the same
 * events seals to; written for one partition count and sealed with
 * another, they are re-routed by the new count; and the batch buffers the
 * memory outbox hands back once a segment is removed never serve a new
 * batch while an older one that is still in the outbox uses them. Pure: no
 * hub (the routed path end to end: backpressure.test.ts and the staged
 * partition change below in pipelining.test.ts).
 */
import { Buffer } from 'node:buffer';
import { describe, expect, it } from 'vitest';
import { crc32c, decodeBatch } from '../../protocol/index.ts';
import type { SendEvent } from '../../web-client/event-input.ts';
import { MemoryOutboxStore } from '../../web-client/outbox-memory.ts';
import type { OutboxEvent } from '../../web-client/outbox.ts';
import { PART_FULL, RoutedChunk, UNROUTED } from '../../web-client/outbox-routed-chunk.ts';
import { Chunk, isSegment, sealChunk, type Segment } from '../../web-client/outbox-segment.ts';

const NOW = 1_700_000_000_000;
const LIMITS = { maxRecords: 1000, maxBytes: 1 << 20 };

/** Events of every shape the encoder distinguishes: JSON and bytes values, long ones (2- and 3-byte varints), headers, named partitions, tombstones, earlier timestamps. */
function mixed(n: number): SendEvent[] {
  const out: SendEvent[] = [];
  for (let i = 0; i < n; i++) {
    const key = i % 5 === 0 ? new Uint8Array([i & 0xff, 7]) : `k${i % 13}`;
    let value: unknown;
    if (i % 4 === 0) value = new Uint8Array(i % 3 === 0 ? 200 : 5).fill(i & 0xff);
    else if (i % 4 === 1) value = { i, text: 'é✓'.repeat(i % 50), pad: 'x'.repeat(i % 7 === 0 ? 20_000 : i) };
    else if (i % 4 === 2) value = i % 8 === 2 ? null : `text ${i}`;
    else value = [i, true, { nested: i }];
    const e: SendEvent = { key, value };
    if (i % 9 === 0) e.headers = { h: `v${i}`, bin: new Uint8Array([1, 2, i & 0xff]) };
    if (i % 11 === 0) e.partition = i % 3;
    if (i % 6 === 0) e.timestamp = NOW - i * 1000;
    out.push(e);
  }
  return out;
}

function routed(events: SendEvent[], partitions: number): RoutedChunk {
  const c = new RoutedChunk('t', '', 1, { partitions, limits: LIMITS }, 'pid-1', 8000, 1 << 30);
  for (const e of events) {
    const r = c.writeRouted(e, NOW, 1 << 30);
    expect(r).toBeGreaterThan(0);
    c.commit(r);
  }
  return c;
}

function plain(events: SendEvent[]): Chunk {
  const c = new Chunk('t', '', 1);
  for (const e of events) c.commit(c.write(e, NOW, 1 << 30));
  return c;
}

const view = (segs: Segment[]) => segs.map((s) => ({ p: s.p, seq: s.seq, count: s.count, bytes: s.bytes, ids: [...s.ids], sizes: [...s.sizes], batch: Buffer.from(s.batch).toString('base64') }));

describe('RoutedChunk', () => {
  it('seals to the bytes a plain chunk of the same events seals to (headers, sequences, ids, bound sizes)', () => {
    const events = mixed(400);
    const next1 = [5, 0, 17];
    const next2 = [5, 0, 17];
    const a = routed(events, 3).sealRouted(3, next1, LIMITS, crc32c)!;
    const b = sealChunk(plain(events), 3, next2, 'pid-1', LIMITS, crc32c);
    expect(view(a)).toEqual(view(b));
    expect(next1).toEqual(next2);
    for (const s of a) expect(decodeBatch(s.batch.slice()).length).toBe(s.count);
  });

  it('written for 3 partitions, sealed with 4: re-routed as a plain chunk of the same events would be', () => {
    const events = mixed(300);
    const c = routed(events, 3);
    expect(c.sealRouted(4, [], LIMITS, crc32c)).toBeUndefined();
    const next1: number[] = [];
    const next2: number[] = [];
    const a = c.reroute(4, next1, LIMITS, crc32c);
    const b = sealChunk(plain(events), 4, next2, 'pid-1', LIMITS, crc32c);
    expect(view(a)).toEqual(view(b));
    expect(next1).toEqual(next2);
    for (const s of a) expect(s.chunk).toBe(c);
    // Smaller batch limits than written for: re-routed too.
    expect(routed(events, 3).sealRouted(3, [], { maxRecords: 10, maxBytes: LIMITS.maxBytes }, crc32c)).toBeUndefined();
  });

  it('reads its events back as the plain chunk holds them, and leaves unkeyed events and full partitions to the caller', () => {
    const events = mixed(120);
    const flat = (list: OutboxEvent[]) => list.map((e) => ({ ...e, rec: { ...e.rec, v: e.rec.v instanceof Uint8Array ? Buffer.from(e.rec.v).toString('base64') : e.rec.v } }));
    expect(flat(routed(events, 3).events())).toEqual(flat(plain(events).events()));
    // A staged chunk (id 0: its ids are not known yet) cannot place an unkeyed event.
    const c = new RoutedChunk('t', '', 0, { partitions: 2, limits: { maxRecords: 2, maxBytes: 1 << 20 } }, 'pid-1', 8000, 1 << 30);
    expect(c.writeRouted({ value: 1 }, NOW, 1 << 30)).toBe(UNROUTED);
    expect(c.writeRouted({ value: 1, partition: 5 }, NOW, 1 << 30)).toBe(PART_FULL);
    for (let i = 0; i < 2; i++) c.commit(c.writeRouted({ value: i, partition: 0 }, NOW, 1 << 30));
    expect(c.writeRouted({ value: 2, partition: 0 }, NOW, 1 << 30)).toBe(PART_FULL);
    expect(c.writeRouted({ value: 2, partition: 1 }, NOW, 1 << 30)).toBeGreaterThan(0);
    // Invalid events throw as a plain chunk's write does.
    expect(() => c.writeRouted({ key: 'k', value: 1, partition: -1 }, NOW, 1 << 30)).toThrow(/partition must be/);
  });
});

/** Per partition, the records sealed (sequence, id, key, value, timestamp, headers), in sequence order. */
function sealedRecords(segs: Segment[]): Map<number, unknown[]> {
  const out = new Map<number, unknown[]>();
  for (const s of [...segs].sort((a, b) => a.seq - b.seq)) {
    const recs = decodeBatch(s.batch.slice());
    const list = out.get(s.p) ?? [];
    recs.forEach((r, k) => list.push({ seq: s.seq + k, id: s.ids[k], size: s.sizes[k], key: r.key, value: Buffer.from(r.value ?? []).toString('base64'), ts: r.timestamp, h: r.headers }));
    out.set(s.p, list);
  }
  return out;
}

/** A store that has sealed one chunk of `topic` with 3 partitions (so it knows the count: appendEvents then writes routed chunks). */
async function hintedStore(topic: string): Promise<{ store: MemoryOutboxStore; producerId: string; bounds: { maxEvents: number; maxBytes: number } }> {
  const store = new MemoryOutboxStore(`hinted-${Math.random()}`);
  const { producerId } = await store.open();
  const bounds = { maxEvents: 1_000_000, maxBytes: 1 << 30 };
  store.appendEvents(topic, '', [{ key: 'a', value: 1 }], 0, 1, NOW, bounds);
  for (const c of store.readChunks(undefined, 1000)) store.sealChunk(c, 3, LIMITS, crc32c);
  return { store, producerId, bounds };
}

function sealAll(store: MemoryOutboxStore, partitions: number): Segment[] {
  const segs: Segment[] = [];
  for (const c of store.readChunks(undefined, 1_000_000)) {
    if (c.sealed) continue;
    store.sealChunk(c, partitions, LIMITS, crc32c);
    for (const s of c.sealed!) if (isSegment(s)) segs.push(s);
  }
  return segs;
}

describe('appendEvents into routed chunks (the count of the topic known)', () => {
  it('keyed, unkeyed and named events seal to the records a plain chunk of the same ids seals to', async () => {
    const { store, producerId, bounds } = await hintedStore('t');
    // Unkeyed events too (their partition follows their id), over more than one run of 1024 ids.
    const events = mixed(3000).map((e, i) => (i % 3 === 1 && e.partition === undefined ? { ...e, key: undefined } : e));
    expect(store.appendEvents('t', '', events, 0, 1700, NOW, bounds)).toBe(1700);
    expect(store.appendEvents('t', '', events, 1700, 3000, NOW, bounds)).toBe(1300);
    const chunks = store.readChunks(undefined, 1_000_000).filter((c) => !c.sealed);
    expect(chunks.every((c) => c.routed)).toBe(true);
    const a = sealAll(store, 3);
    const ref = new Chunk('t', '', chunks[0].id);
    for (const e of events) ref.commit(ref.write(e, NOW, 1 << 30));
    const b = sealChunk(ref, 3, [0, 1, 0], producerId, LIMITS, crc32c);
    expect(sealedRecords(a)).toEqual(sealedRecords(b));
    expect((await store.stats()).events).toBe(3001);
  });

  it('sealed with another count: re-routed, unkeyed events by their ids', async () => {
    const { store, producerId, bounds } = await hintedStore('t');
    const events = Array.from({ length: 2500 }, (_, i): SendEvent => (i % 2 ? { value: i } : { key: `k${i % 7}`, value: i }));
    store.appendEvents('t', '', events, 0, events.length, NOW, bounds);
    const first = store.readChunks(undefined, 1_000_000).find((c) => !c.sealed)!;
    const a = sealAll(store, 5);
    const ref = new Chunk('t', '', first.id);
    for (const e of events) ref.commit(ref.write(e, NOW, 1 << 30));
    expect(sealedRecords(a)).toEqual(sealedRecords(sealChunk(ref, 5, [0, 1, 0], producerId, LIMITS, crc32c)));
  });

  it('an invalid event leaves none of the call in: the count and place of each partition restored', async () => {
    const { store, producerId, bounds } = await hintedStore('t');
    const good = mixed(500);
    expect(store.appendEvents('t', '', good, 0, 200, NOW, bounds)).toBe(200);
    const before = await store.stats();
    // Fills on into the open routed chunk and beyond it (past a partition's 1000 records), then an invalid event.
    const bad = [...mixed(2500), { key: 'k', value: 1, partition: -1 }];
    expect(() => store.appendEvents('t', '', bad, 0, bad.length, NOW, bounds)).toThrow(/partition must be/);
    // And one that `rest` (the staging of what does not fit) finds invalid.
    const tight = { maxEvents: before.events + 100, maxBytes: bounds.maxBytes };
    expect(() => store.appendEvents('t', '', bad, 0, bad.length, NOW, tight, () => store.stageEvents('t', '', bad, 100, bad.length, NOW, 1 << 30, tight))).toThrow(/partition must be/);
    expect(await store.stats()).toEqual(before);
    expect(store.appendEvents('t', '', good, 200, 500, NOW, bounds)).toBe(300);
    const first = store.readChunks(undefined, 1_000_000).find((c) => !c.sealed)!;
    const a = sealAll(store, 3);
    const ref = new Chunk('t', '', first.id);
    for (const e of good) ref.commit(ref.write(e, NOW, 1 << 30));
    expect(sealedRecords(a)).toEqual(sealedRecords(sealChunk(ref, 3, [0, 1, 0], producerId, LIMITS, crc32c)));
  });
});

describe('the memory outbox batch buffer pool', () => {
  it('a buffer handed back by a removed segment serves a new batch, never one still in the outbox', () => {
    const store = new MemoryOutboxStore(`pool-${Math.random()}`);
    const bounds = { maxEvents: 1_000_000, maxBytes: 1 << 30 };
    const batch = (n: number, from: number) => Array.from({ length: n }, (_, i) => ({ key: `k${(from + i) % 8}`, value: new Uint8Array(100).fill((from + i) & 0xff) }));
    const live: Segment[] = [];
    const copies = new Map<Segment, Uint8Array>();
    const given = new Set<ArrayBufferLike>();
    let reused = 0;
    let sent = 0;
    for (let round = 0; round < 30; round++) {
      // Some rounds through the staged (routed) path, once the store knows the count.
      if (round % 2 === 1) {
        const staged = store.stageEvents('t', '', batch(3000, sent), 0, 3000, NOW, 1 << 20, bounds);
        expect(store.appendStaged(staged, bounds)).toBe(3000);
      } else expect(store.appendEvents('t', '', batch(3000, sent), 0, 3000, NOW, bounds)).toBe(3000);
      sent += 3000;
      for (const c of store.readChunks(undefined, 1_000_000)) {
        if (c.sealed) continue;
        store.sealChunk(c, 4, { maxRecords: 500, maxBytes: 1 << 20 }, crc32c);
        for (const s of c.sealed!) {
          if (!isSegment(s)) continue;
          live.push(s);
          if (given.has(s.batch.buffer)) reused++;
          copies.set(s, s.batch.slice());
        }
      }
      // No two segments in the outbox share memory.
      for (let i = 0; i < live.length; i++)
        for (let j = i + 1; j < live.length; j++) {
          const x = live[i].batch;
          const y = live[j].batch;
          if (x.buffer === y.buffer) expect(x.byteOffset + x.length <= y.byteOffset || y.byteOffset + y.length <= x.byteOffset).toBe(true);
        }
      // Ack (remove) the older half: their buffers go back to the pool.
      const acked = live.splice(0, Math.floor(live.length / 2));
      for (const s of acked) given.add(s.batch.buffer);
      store.removeItems(acked);
      for (const s of acked) {
        expect(s.batch.length).toBe(0);
        copies.delete(s);
      }
      // What is still in the outbox is byte for byte what was sealed.
      for (const s of live) expect(Buffer.compare(s.batch, copies.get(s)!)).toBe(0);
    }
    expect(reused).toBeGreaterThan(0);
  });
});
