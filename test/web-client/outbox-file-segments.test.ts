/**
 * The file outbox's segments (web-client/outbox-file-segments.ts) on a real
 * file: the drain reads journal groups as chunks, a seal journals the
 * assignment of the whole read-ahead of a topic before it resolves, acked
 * segments leave whole, and what a crash leaves (the file as it is, the
 * store never closed) reopens with exactly the events not removed, under
 * the partitions and sequences they were sealed with; a compaction of
 * partly removed sealed chunks keeps them too.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { crc32c, partitionForKey } from '../../protocol/index.ts';
import { FileOutboxStore } from '../../web-client/outbox-file.ts';
import { isSegment, type Chunk, type Segment } from '../../web-client/outbox-segment.ts';
import type { OutboxEvent } from '../../web-client/outbox.ts';

const BOUNDS = { maxEvents: 100_000, maxBytes: 64 * 1024 * 1024 };
const LIMITS = { maxRecords: 700, maxBytes: 1024 * 1024 };
const N = 12_000;
const PARTITIONS = 3;

async function filled(file: string, n: number, from = 0): Promise<FileOutboxStore> {
  const s = new FileOutboxStore(file);
  await s.open();
  await fill(s, n, from);
  return s;
}

async function fill(s: FileOutboxStore, n: number, from: number): Promise<void> {
  const done = new Set<Promise<void>>();
  for (let i = from; i < from + n; i++) {
    const d = s.sendDirect('t', '', { key: `k${i % 10}`, value: { i } }, 1_700_000_000_000, BOUNDS);
    if (!d) throw new Error('not taken');
    done.add(d);
  }
  await Promise.all(done);
}

/** Every event of sealed chunks as `id p/seq`, and the live count. */
function assignments(chunks: Chunk[]): Map<number, string> {
  const out = new Map<number, string>();
  for (const c of chunks) {
    for (const it of c.sealed ?? []) {
      if (isSegment(it)) for (let k = 0; k < it.count; k++) out.set(it.ids[k], `${it.p}/${it.seq + k}`);
      else out.set(it.id, `${it.p}/${it.seq}`);
    }
  }
  return out;
}

describe('file outbox segments', () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'outbox-fseg-'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('a seal journals the whole read-ahead before it resolves; a crash after a partly removed seal reopens with the rest under the same partitions and sequences', async () => {
    const file = path.join(dir, 'o.outbox');
    const s = await filled(file, N);
    const seg = s.segments!;
    const chunks = seg.readChunks(undefined, 1_000_000);
    expect(chunks.reduce((n, c) => n + c.live, 0)).toBe(N);
    expect(chunks.length).toBeGreaterThan(1);
    // One seal of the first chunk seals every chunk of the topic read so far, in one journal entry.
    const sealing = seg.sealChunk(chunks[0], PARTITIONS, LIMITS, crc32c);
    expect(chunks[0].sealed).toBeUndefined(); // nothing goes out before the assignment is on disk
    await sealing;
    expect(chunks.every((c) => c.sealed)).toBe(true);
    const sealed = assignments(chunks);
    expect(sealed.size).toBe(N);
    // Partitions by key, sequences dense per partition from 0 in id order.
    const next = new Array<number>(PARTITIONS).fill(0);
    const wrong: string[] = [];
    for (let id = 1; id <= N; id++) {
      const p = partitionForKey(`k${(id - 1) % 10}`, PARTITIONS);
      if (sealed.get(id) !== `${p}/${next[p]++}`) wrong.push(`${id}: ${sealed.get(id)}`);
    }
    expect(wrong).toEqual([]);

    // Acks: half of the first chunk's segments whole, and a split segment's events one by one.
    const first = chunks[0].sealed as Segment[];
    const acked: Array<Segment | OutboxEvent> = first.slice(0, Math.floor(first.length / 2));
    const split = seg.splitSegment(chunks[1].sealed![0] as Segment);
    acked.push(...split.slice(0, 5));
    const removed = new Set<number>();
    for (const it of acked) if (isSegment(it)) for (const id of it.ids) removed.add(id);
    for (const e of split.slice(0, 5)) removed.add(e.id);
    await seg.removeItems(acked);
    expect((await s.stats()).events).toBe(N - removed.size);
    expect(await s.countThrough(N)).toBe(N - removed.size);

    // What a SIGKILL leaves: the file as it is now (every write above was fdatasynced before it resolved).
    const crashed = path.join(dir, 'crashed.outbox');
    fs.copyFileSync(file, crashed);
    const r = new FileOutboxStore(crashed);
    await r.open();
    expect((await r.stats()).events).toBe(N - removed.size);
    const back = r.segments!.readChunks(undefined, 1_000_000);
    const again = assignments(back);
    expect(again.size).toBe(N - removed.size);
    expect([...again].filter(([id, ps]) => removed.has(id) || ps !== sealed.get(id))).toEqual([]);
    // New events number on from the sequences the journal holds.
    await fill(r, 30, N);
    const fresh = r.segments!.readChunks(back[back.length - 1], 1_000_000);
    expect(fresh.length).toBe(1);
    await r.segments!.sealChunk(fresh[0], PARTITIONS, LIMITS, crc32c);
    const numbered = [...assignments(fresh).values()];
    expect(numbered.length).toBe(30);
    expect(numbered.filter((ps) => ps !== `${ps.split('/')[0]}/${next[Number(ps.split('/')[0])]++}`)).toEqual([]);
    await r.close();

    // All but one segment acked, then a close: the journal is rewritten from the sealed chunks' batches.
    const rest: Segment[] = [];
    for (const c of chunks) for (const it of c.sealed!) if (isSegment(it)) rest.push(it);
    rest.pop();
    for (const it of rest) for (const id of it.ids) removed.add(id);
    await seg.removeItems(rest);
    const before = fs.statSync(file).size;
    await s.close();
    expect(fs.statSync(file).size).toBeLessThan(before);
    const c = new FileOutboxStore(file);
    await c.open();
    expect((await c.stats()).events).toBe(N - removed.size);
    const compacted = assignments(c.segments!.readChunks(undefined, 1_000_000));
    expect(compacted.size).toBe(N - removed.size);
    expect([...compacted].filter(([id, ps]) => removed.has(id) || ps !== sealed.get(id))).toEqual([]);
    await c.close();
  });

  it('a chunk refused for good before it was sealed goes to failed() whole, and a reopen does not bring it back', async () => {
    const file = path.join(dir, 'f.outbox');
    const s = await filled(file, 100);
    const chunks = s.segments!.readChunks(undefined, 1_000);
    expect(chunks.length).toBe(1);
    await s.segments!.failItems(chunks, 'TOPIC_REFUSED', 'no');
    expect((await s.stats()).events).toBe(0);
    const failed = await s.failed();
    expect(failed.length).toBe(100);
    expect(new TextDecoder().decode(failed[99].rec.v!)).toBe('{"i":99}');
    const crashed = path.join(dir, 'f2.outbox');
    fs.copyFileSync(file, crashed);
    await s.close();
    const r = new FileOutboxStore(crashed);
    await r.open();
    expect((await r.stats()).events).toBe(0);
    expect((await r.failed()).length).toBe(100);
    expect(r.segments!.readChunks(undefined, 1_000)).toEqual([]);
    await r.close();
  });
});
