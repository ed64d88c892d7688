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
    const c = new RoutedChunk('t', '', 1, { partitions: 2, limits: { maxRecords: 2, maxBytes: 1 << 20 } }, 'pid-1', 8000, 1 << 30);
    expect(c.writeRouted({ value: 1 }, NOW, 1 << 30)).toBe(UNROUTED);
    expect(c.writeRouted({ value: 1, partition: 5 }, NOW, 1 << 30)).toBe(PART_FULL);
    for (let i = 0; i < 2; i++) c.commit(c.writeRouted({ value: i, partition: 0 }, NOW, 1 << 30));
    expect(c.writeRouted({ value: 2, partition: 0 }, NOW, 1 << 30)).toBe(PART_FULL);
    expect(c.writeRouted({ value: 2, partition: 1 }, NOW, 1 << 30)).toBeGreaterThan(0);
    // Invalid events throw as a plain chunk's write does.
    expect(() => c.writeRouted({ key: 'k', value: 1, partition: -1 }, NOW, 1 << 30)).toThrow(/partition must be/);
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
