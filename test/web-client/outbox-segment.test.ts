/**
 * The memory outbox's segments: a sealed chunk's batches are the bytes the
 * reference encoder writes, and the produce frame written in a segment's own
 * room (`segmentFrame`) decodes to the frame `encodeCbor` would send, for
 * every size of id, partition and topic name; so does the frame written
 * before a batch of single events encoded with room (`batchFrame`, the
 * drain of the file and IndexedDB outboxes). Pure: no hub.
 */
import { describe, expect, it } from 'vitest';
import { crc32c, decodeBatch, decodeCbor, encodeCbor, LIMITS } from '../../protocol/index.ts';
import { encodeOutboxBatch, toOutboxRecord } from '../../web-client/event-input.ts';
import { Chunk, sealChunk, type Segment } from '../../web-client/outbox-segment.ts';
import { batchFrame, frameRoom, hasFrameRoom, segmentFrame } from '../../web-client/outbox-frame.ts';

const NOW = 1_700_000_000_000;

function sealed(topic: string, n: number): Segment[] {
  const c = new Chunk(topic, '', 1);
  for (let i = 0; i < n; i++) c.commit(c.write({ key: `k${i % 7}`, value: new Uint8Array([i & 0xff, 1, 2, 3]) }, NOW + i, 1 << 20));
  return sealChunk(c, 3, [], 'pid-1', { maxRecords: 1000, maxBytes: 1 << 20 }, crc32c);
}

/** A decoded frame with its byte strings as plain Uint8Arrays (cbor-x gives Buffers for some). */
function plain(frame: unknown): unknown {
  const f = frame as { batches: Array<{ p: number; b: Uint8Array }> };
  return { ...f, batches: f.batches.map((x) => ({ p: x.p, b: new Uint8Array(x.b) })) };
}

describe('segmentFrame', () => {
  it('decodes to the produce frame encodeCbor writes, ids and partitions of every CBOR width, topics up to the longest name', () => {
    for (const topic of ['t', 'a'.repeat(23), 'b'.repeat(24), 'c'.repeat(LIMITS.maxTopicNameLength)]) {
      const segs = sealed(topic, 50);
      expect(segs.length).toBe(3);
      for (const s of segs) {
        const batch = s.batch.slice();
        expect(decodeBatch(batch).length).toBe(s.count);
        expect(hasFrameRoom(s, topic)).toBe(true);
        for (const id of [0, 23, 24, 255, 256, 65_535, 65_536, 2 ** 32 - 1, 2 ** 32, Number.MAX_SAFE_INTEGER]) {
          for (const p of [s.p, 23, 24, 255, 256, 65_536]) {
            const frame = segmentFrame(s, topic, p, id);
            expect(plain(decodeCbor(frame))).toEqual(plain(decodeCbor(encodeCbor({ t: 'produce', topic, batches: [{ p, b: batch }], id }))));
            // The batch itself is untouched by the fields written before it.
            expect(s.batch).toEqual(batch);
          }
        }
      }
    }
  });

  it('a segment without room (another store, no room field) says so', () => {
    const [s] = sealed('t', 10);
    const bare = { ...s, room: undefined };
    expect(hasFrameRoom(bare, 't')).toBe(false);
    expect(() => segmentFrame(bare, 't', 0, 1)).toThrow(/need \d+ bytes/);
  });

  it('batchFrame: a batch of single events encoded with room before it is the same batch, framed as encodeCbor frames it', () => {
    const events = Array.from({ length: 40 }, (_, i) => toOutboxRecord('t', { key: `k${i % 3}`, value: { i, pad: 'x'.repeat(i) } }, NOW + i, true));
    const plainBatch = encodeOutboxBatch('pid-1', 7, events, crc32c);
    for (const topic of ['t', 'a'.repeat(23), 'c'.repeat(LIMITS.maxTopicNameLength)]) {
      const room = frameRoom(topic);
      const b = encodeOutboxBatch('pid-1', 7, events, crc32c, room);
      expect(b).toEqual(plainBatch);
      for (const id of [0, 24, 65_536, 2 ** 32, Number.MAX_SAFE_INTEGER]) {
        for (const p of [0, 24, 65_536]) {
          const frame = batchFrame(b, room, topic, p, id);
          expect(plain(decodeCbor(frame))).toEqual(plain(decodeCbor(encodeCbor({ t: 'produce', topic, batches: [{ p, b: plainBatch }], id }))));
          expect(b).toEqual(plainBatch);
        }
      }
      expect(() => batchFrame(plainBatch, 0, topic, 0, 1)).toThrow(/need \d+ bytes/);
    }
  });
});
