/**
 * The LogStore contract, engine-neutral, run against both engines: the
 * embedded file engine and JetStream on a real single nats-server. (The
 * other files in test/storage cover what only the file engine has: segment
 * files, crash recovery, fsync policies, compaction.)
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readBatchHeader } from '../../protocol/batch.ts';
import { JetStreamLogStore } from '../../server/storage/jetstream/jetstream-log-store.ts';
import type { AppendResult, LogStore } from '../../server/storage/log-store.ts';
import { startNatsCluster, type NatsCluster } from '../../harness/nats.ts';
import { makeBatch, openStore, readAll, rmDir, tempDir, valueText } from '../helpers/store.ts';

interface Engine {
  name: string;
  setup(): Promise<void>;
  open(): Promise<LogStore>;
  teardown(): Promise<void>;
}

let nats: NatsCluster | null = null;
let dir = '';
const engines: Engine[] = [
  {
    name: 'file',
    setup: async () => void (dir = tempDir()),
    // One data dir per store: the file engine locks it.
    open: () => openStore(tempDir()),
    teardown: async () => rmDir(dir),
  },
  {
    name: 'jetstream',
    setup: async () => void (nats = await startNatsCluster({ nodes: 1 })),
    open: async () => {
      const s = new JetStreamLogStore({ servers: nats!.servers.split(','), refreshIntervalMs: 0 });
      await s.open();
      return s;
    },
    teardown: async () => nats?.stop(),
  },
];

let n = 0;
const fresh = (tag: string): string => `${tag}-${++n}-${Math.random().toString(36).slice(2, 6)}`;

const pbatch = (pid: string, seq: number, count = 3) => makeBatch({ producerId: pid, baseSequence: seq, count, tag: `${pid}-${seq}` });

for (const engine of engines) {
  describe(`LogStore contract: ${engine.name}`, () => {
    const open: LogStore[] = [];
    const store = async (): Promise<LogStore> => {
      const s = await engine.open();
      open.push(s);
      return s;
    };
    beforeAll(() => engine.setup(), 30_000);
    afterAll(async () => {
      for (const s of open) await s.close();
      await engine.teardown();
    });

    it('appends and reads back with dense offsets', async () => {
      const s = await store();
      const t = fresh('orders');
      await s.createTopic(t, 2);
      const acks: AppendResult[] = [];
      for (let i = 0; i < 60; i++) acks.push(await s.append(t, 0, makeBatch({ count: 5, tag: `b${i}`, valueBytes: 40 })));
      expect(acks.map((a) => a.baseOffset)).toEqual(Array.from({ length: 60 }, (_, i) => i * 5));
      expect(acks[3].offsets).toEqual([15, 16, 17, 18, 19]);
      const recs = await readAll(s, t, 0);
      expect(recs.map((r) => r.offset)).toEqual(Array.from({ length: 300 }, (_, i) => i));
      expect(valueText(recs[7])!.startsWith('b1-2')).toBe(true);
      expect(s.offsets(t, 0)).toMatchObject({ earliest: 0, highWatermark: 300, logEnd: 300 });
      expect(s.offsets(t, 1).logEnd).toBe(0);
    });

    it('a read from any offset returns the batch that contains it, never past the high watermark', async () => {
      const s = await store();
      const t = fresh('t');
      await s.createTopic(t, 1);
      for (let i = 0; i < 40; i++) await s.append(t, 0, makeBatch({ count: 4, valueBytes: 30 }));
      for (let off = 0; off < 160; off += 3) {
        const r = await s.read(t, 0, off, 1);
        const h = readBatchHeader(r.bytes);
        expect(h.baseOffset).toBe(off - (off % 4));
        expect(h.sizeBytes).toBe(r.bytes.length);
        expect(r.nextOffset).toBe(h.baseOffset + 4);
        // A synchronous answer from memory (live delivery's path) is the same read, or none at all.
        const cached = s.readCached?.(t, 0, off, 1);
        if (cached) expect({ ...cached, bytes: Buffer.from(cached.bytes) }).toEqual({ ...r, bytes: Buffer.from(r.bytes) });
      }
      // The file engine holds the newest batches in its tail cache: the tip is served from memory.
      if (engine.name === 'file') expect(s.readCached!(t, 0, 157, 1)).toMatchObject({ nextOffset: 160, highWatermark: 160 });
      expect(s.readCached?.(t, 0, 160, 1000) ?? null).toBeNull();
      expect(s.readCached?.(t, 0, 161, 1000) ?? null).toBeNull();
      const tip = await s.read(t, 0, 160, 1000);
      expect(tip.bytes.length).toBe(0);
      expect(tip.nextOffset).toBe(160);
      await expect(s.read(t, 0, 161, 1000)).rejects.toMatchObject({ code: 'OFFSET_OUT_OF_RANGE', details: { earliest: 0, logEnd: 160 } });
    });

    it('finds offsets by append time', async () => {
      const s = await store();
      const t = fresh('t');
      await s.createTopic(t, 1);
      const acks: AppendResult[] = [];
      for (let i = 0; i < 30; i++) {
        acks.push(await s.append(t, 0, makeBatch({ count: 2 })));
        if (i % 10 === 9) await new Promise((r) => setTimeout(r, 5)); // paces the writes (not a wait)
      }
      expect(await s.offsetForTimestamp(t, 0, 0)).toBe(0);
      for (const i of [0, 9, 10, 20, 29]) {
        const firstAtOrAfter = acks.find((a) => a.appendTime >= acks[i].appendTime)!.baseOffset;
        expect(await s.offsetForTimestamp(t, 0, acks[i].appendTime)).toBe(firstAtOrAfter);
      }
      expect(await s.offsetForTimestamp(t, 0, acks[29].appendTime + 1)).toBe(60);
    });

    it('concurrent appends get distinct, ordered offsets and move the high watermark', async () => {
      const s = await store();
      const t = fresh('t');
      await s.createTopic(t, 1);
      const acks = await Promise.all(Array.from({ length: 50 }, (_, i) => s.append(t, 0, makeBatch({ count: 2, tag: `c${i}` }))));
      expect(acks.map((a) => a.baseOffset)).toEqual(Array.from({ length: 50 }, (_, i) => i * 2));
      const seen: number[] = [];
      const off = s.onDurable((topic, _p, hw) => topic === t && seen.push(hw));
      await s.append(t, 0, makeBatch({ count: 1 }));
      off();
      expect(seen.at(-1)).toBe(101);
      const recs = await readAll(s, t);
      expect(recs.map((r) => valueText(r)).slice(0, 4)).toEqual(['c0-0', 'c0-1', 'c1-0', 'c1-1']);
    });

    it('validates topics, partitions and batches', async () => {
      const s = await store();
      const t = fresh('t');
      await s.createTopic(t, 1);
      await expect(s.createTopic(t, 1)).rejects.toMatchObject({ code: 'TOPIC_EXISTS' });
      await expect(s.createTopic('bad/name', 1)).rejects.toMatchObject({ code: 'BAD_TOPIC_NAME' });
      await expect(s.createTopic(fresh('u'), 1, { fsync: 'sometimes' as never })).rejects.toMatchObject({ code: 'BAD_CONFIG' });
      await expect(s.append('nope', 0, makeBatch())).rejects.toMatchObject({ code: 'UNKNOWN_TOPIC' });
      await expect(s.append(t, 3, makeBatch())).rejects.toMatchObject({ code: 'BAD_PARTITION' });
      const b = makeBatch();
      b[b.length - 1] ^= 1;
      await expect(s.append(t, 0, b)).rejects.toMatchObject({ code: 'CORRUPT_BATCH' });
      const grown = await s.updateTopic(t, { partitions: 3, config: { retentionMs: 3_600_000 } });
      expect(grown).toMatchObject({ partitions: 3, config: { retentionMs: 3_600_000 } });
      await s.append(t, 2, makeBatch());
      await s.deleteTopic(t);
      expect(s.getTopic(t)).toBeUndefined();
      await s.createTopic(t, 1);
      expect(s.offsets(t, 0).logEnd).toBe(0);
    });

    it('idempotent producers: a retry answers with the original offsets; overlaps are refused; old retries are found', async () => {
      const s = await store();
      const t = fresh('t');
      await s.createTopic(t, 1);
      const first = await s.append(t, 0, pbatch('p1', 0));
      await s.append(t, 0, pbatch('p2', 0));
      expect(await s.append(t, 0, pbatch('p1', 0))).toMatchObject({ duplicate: true, offsets: first.offsets, appendTime: first.appendTime });
      expect(s.lastSequence(t, 0, 'p1')).toBe(2);
      expect(s.lastSequence(t, 0, 'nobody')).toBe(-1);
      await s.append(t, 0, pbatch('p1', 10));
      await expect(s.append(t, 0, pbatch('p1', 11, 5))).rejects.toMatchObject({ code: 'BAD_SEQUENCE' });
      const acks: AppendResult[] = [];
      for (let i = 0; i < 20; i++) acks.push(await s.append(t, 0, pbatch('q', i * 3)));
      expect(await s.append(t, 0, pbatch('q', 6))).toMatchObject({ duplicate: true, offsets: acks[2].offsets });
      const [a, b] = await Promise.all([s.append(t, 0, pbatch('r', 0)), s.append(t, 0, pbatch('r', 0))]);
      expect(b).toMatchObject({ duplicate: true, offsets: a.offsets });
      expect((await readAll(s, t)).length).toBe(3 + 3 + 3 + 60 + 3);
    });
  });
}
