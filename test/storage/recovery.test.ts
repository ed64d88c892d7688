import fs from 'node:fs';
import path from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeBatch, openStore, readAll, rmDir, tempDir, valueText } from '../helpers/store.ts';

const segLog = (dir: string, topic: string, base = 0) => path.join(dir, topic, '0', String(base).padStart(20, '0') + '.log');

/** A template log of `n` batches, written once and copied per case. */
async function buildTemplate(dir: string, n: number): Promise<{ sizes: number[] }> {
  const store = await openStore(dir, { indexIntervalBytes: 200 });
  await store.createTopic('t', 1, { fsync: 'never' });
  for (let i = 0; i < n; i++) await store.append('t', 0, makeBatch({ count: 3, tag: `b${i}`, valueBytes: 20 + i }));
  await store.close();
  const file = segLog(dir, 't');
  const bytes = fs.readFileSync(file);
  const sizes: number[] = [];
  for (let p = 0; p < bytes.length; p += bytes.readUInt32BE(p + 8) + 12) sizes.push(bytes.readUInt32BE(p + 8) + 12);
  return { sizes };
}

describe('crash recovery', () => {
  let template: string;
  let sizes: number[];
  const N = 8;

  beforeAll(async () => {
    template = tempDir();
    ({ sizes } = await buildTemplate(template, N));
  });
  afterAll(() => rmDir(template));

  /** Cuts a copy of the template inside its last batch and checks what recovery keeps. */
  async function cutAndRecover(cut: number, dropIndexes: boolean): Promise<void> {
    const lastStart = sizes.slice(0, -1).reduce((a, b) => a + b, 0);
    {
      {
        const dir = tempDir();
        try {
          fs.cpSync(template, dir, { recursive: true });
          fs.rmSync(path.join(dir, '@lock'), { force: true });
          for (const f of fs.readdirSync(path.join(dir, 't', '0'))) if (f.endsWith('.snapshot') || (dropIndexes && f.includes('index'))) fs.rmSync(path.join(dir, 't', '0', f));
          fs.truncateSync(segLog(dir, 't'), lastStart + cut);
          const store = await openStore(dir);
          try {
            expect(store.offsets('t', 0).logEnd).toBe((N - 1) * 3);
            const recs = await readAll(store, 't');
            expect(recs.length).toBe((N - 1) * 3);
            expect(valueText(recs.at(-1)!)!.startsWith(`b${N - 2}-2`)).toBe(true);
            expect(fs.statSync(segLog(dir, 't')).size).toBe(lastStart);
            const ack = await store.append('t', 0, makeBatch({ count: 1, tag: 'after' }));
            expect(ack.baseOffset).toBe((N - 1) * 3);
          } finally {
            await store.close();
          }
        } finally {
          rmDir(dir);
        }
      }
    }
  }

  it('a log cut at every byte position of its last batch recovers exactly the batches before it', async () => {
    const lastSize = sizes[sizes.length - 1];
    for (let cut = 0; cut < lastSize; cut++) await cutAndRecover(cut, false);
  });

  it('property: any cut of the last batch, with or without index files and snapshots, recovers the batches before it', async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 0, max: sizes[sizes.length - 1] - 1 }), fc.boolean(), (cut, dropIndexes) => cutAndRecover(cut, dropIndexes)),
      { numRuns: 40 },
    );
  });

  it('a flipped bit in the tail is detected and the log truncated before it', async () => {
    const dir = tempDir();
    try {
      fs.cpSync(template, dir, { recursive: true });
      fs.rmSync(path.join(dir, '@lock'), { force: true });
      const file = segLog(dir, 't');
      const bytes = fs.readFileSync(file);
      const start6 = sizes.slice(0, 6).reduce((a, b) => a + b, 0);
      bytes[start6 + 40] ^= 0x10; // inside batch 6's CRC-covered header
      fs.writeFileSync(file, bytes);
      const store = await openStore(dir);
      expect(store.offsets('t', 0).logEnd).toBe(18);
      expect((await readAll(store, 't')).length).toBe(18);
      await store.close();
      expect(fs.statSync(file).size).toBe(start6);
    } finally {
      rmDir(dir);
    }
  });

  it('garbage index files are ignored and rebuilt', async () => {
    const dir = tempDir();
    try {
      fs.cpSync(template, dir, { recursive: true });
      fs.rmSync(path.join(dir, '@lock'), { force: true });
      const idx = segLog(dir, 't').replace('.log', '.index');
      fs.writeFileSync(idx, Buffer.from([0, 0, 0, 9, 0, 0, 0, 77, 1, 2, 3]));
      const store = await openStore(dir);
      expect((await readAll(store, 't', 0, 13)).map((r) => r.offset)[0]).toBe(13);
      await store.close();
    } finally {
      rmDir(dir);
    }
  });

  it('start-up reads only the active segment tail, not closed segments', async () => {
    const dir = tempDir();
    try {
      let store = await openStore(dir);
      await store.createTopic('t', 1, { segmentBytes: 4096, fsync: 'never' });
      for (let i = 0; i < 100; i++) await store.append('t', 0, makeBatch({ count: 5, valueBytes: 50 }));
      await store.close();
      const segs = fs.readdirSync(path.join(dir, 't', '0')).filter((f) => f.endsWith('.log'));
      expect(segs.length).toBeGreaterThan(5);
      // Corrupt a closed segment in the middle: start-up must not notice (it never reads it).
      const closed = path.join(dir, 't', '0', segs[1]);
      const b = fs.readFileSync(closed);
      b[b.length - 5] ^= 1;
      fs.writeFileSync(closed, b);
      store = await openStore(dir);
      expect(store.offsets('t', 0).logEnd).toBe(500);
      await store.close();
    } finally {
      rmDir(dir);
    }
  });
});
