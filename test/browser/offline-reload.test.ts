/**
 * A page that is offline from the hub's point of view (the hub cut off
 * through a proxy: Chromium cannot load a page while its context is offline)
 * queues 1,000 sends in IndexedDB, is reloaded, and goes online: every event
 * lands in the log once, per key in send order.
 */
import { describe, expect, it } from 'vitest';
import { createTopic, exactlyOnceProblems, readTopic, reloadTestPage, until } from '../../harness/browser.ts';
import { useHubBehindProxy } from '../helpers/browser-hub.ts';
import { WsClient } from '../helpers/ws-client.ts';
import { crc32c, encodeCbor, partitionForKey } from '../../protocol/index.ts';
import { encodeWireBatch } from '../../web-client/event-input.ts';

const fx = useHubBehindProxy();

describe('browser outbox offline', () => {
  it('1,000 sends offline, a reload, then online: all 1,000 in the log exactly once, per-key order kept', async () => {
    await createTopic(fx.hub.url, 'clicks', 4);
    fx.proxy.block(true);
    const ctx = await fx.env.context();
    const page = await fx.env.open(ctx);
    const opts = { url: fx.proxy.wsUrl, name: 'offline', backoffInitialMs: 50, backoffMaxMs: 250 };

    await page.evaluate((o) => window.tb.start('a', o), opts);
    await page.evaluate(() => window.tb.sendMany('a', 'clicks', 0, 600, 7));
    // Half-way through the sends, the page is reloaded; the rest come from the new document.
    await reloadTestPage(page);
    await page.evaluate((o) => window.tb.start('a', o), opts);
    expect(await page.evaluate(() => window.tb.pending('a'))).toBe(600);
    await page.evaluate(() => window.tb.sendMany('a', 'clicks', 600, 400, 7));
    await reloadTestPage(page);
    await page.evaluate((o) => window.tb.start('a', o), opts);
    expect(await page.evaluate(() => window.tb.pending('a'))).toBe(1000);
    expect(await readTopic(fx.hub.url, 'clicks')).toHaveLength(0);

    fx.proxy.block(false);
    await page.evaluate(() => window.tb.flush('a'));
    expect(await page.evaluate(() => window.tb.pending('a'))).toBe(0);
    expect(exactlyOnceProblems(await readTopic(fx.hub.url, 'clicks'), 1000)).toBe('');
    await ctx.close();
  });

  it("an older client's IndexedDB outbox (version 1, records form) drains once under its producer id, then new events", async () => {
    await createTopic(fx.hub.url, 'legacy-clicks', 4);
    const oldPid = 'c0ffee00'.repeat(4);
    const total = 300;
    const utf8 = new TextEncoder();
    const now = Date.now();
    const old = Array.from({ length: total }, (_, n) => ({
      id: n + 1,
      topic: 'legacy-clicks',
      seq: n,
      sub: '',
      rec: { k: `k${n % 7}`, v: utf8.encode(JSON.stringify({ n })), e: 1 as const, ts: now },
      bytes: 64,
    }));
    // The older client had sent its first 100 in the records form and was closed before the ack came back.
    const ws = await WsClient.connect(fx.hub.wsUrl);
    await ws.hello();
    await ws.produce(
      'legacy-clicks',
      old.slice(0, 100).map((e) => e.rec),
      { pid: oldPid, seq: 0 },
    );
    await ws.close();
    const chunk = Array.from(encodeCbor(old));
    const ctx = await fx.env.context();
    const page = await fx.env.open(ctx);
    // Its database, as it wrote it: version 1, one chunk, sequences per topic, no 'bpid'.
    await page.evaluate(
      ({ chunk, oldPid, total }) =>
        new Promise<void>((resolve, reject) => {
          const req = indexedDB.open('tributary-outbox:legacy', 1);
          req.onupgradeneeded = () => {
            const db = req.result;
            db.createObjectStore('chunks', { keyPath: 'first' });
            db.createObjectStore('chunkState', { keyPath: 'first' });
            db.createObjectStore('chunkGone');
            db.createObjectStore('failed', { keyPath: 'id' });
            db.createObjectStore('meta');
            db.createObjectStore('positions');
          };
          req.onerror = () => reject(req.error);
          req.onsuccess = () => {
            const db = req.result;
            const tx = db.transaction(['chunks', 'chunkState', 'meta'], 'readwrite');
            tx.objectStore('chunks').put({ first: 1, data: new Uint8Array(chunk) });
            tx.objectStore('chunkState').put({ first: 1, last: total, live: total });
            tx.objectStore('meta').put(oldPid, 'pid');
            tx.objectStore('meta').put({ 'legacy-clicks': total }, 'seqs');
            tx.objectStore('meta').put({ events: total, bytes: 64 * total, lastId: total }, 'stats');
            tx.oncomplete = () => {
              db.close();
              resolve();
            };
            tx.onerror = () => reject(tx.error);
          };
        }),
      { chunk, oldPid, total },
    );
    // Cut off while the old outbox is counted: a live hub would race the count by draining it.
    fx.proxy.block(true);
    await page.evaluate((url) => window.tb.start('l', { url, name: 'legacy', backoffInitialMs: 50, backoffMaxMs: 250 }), fx.proxy.wsUrl);
    expect(await page.evaluate(() => window.tb.pending('l'))).toBe(total);
    fx.proxy.block(false);
    await page.evaluate((from) => window.tb.sendMany('l', 'legacy-clicks', from, 200, 7), total);
    await page.evaluate(() => window.tb.flush('l'));
    expect(exactlyOnceProblems(await readTopic(fx.hub.url, 'legacy-clicks'), total + 200)).toBe('');
    await ctx.close();
  });

  it('a version 2 IndexedDB outbox (CBOR chunks, some events assigned, sent and acked) drains once beside new column chunks', async () => {
    const topic = 'v2-clicks';
    await createTopic(fx.hub.url, topic, 4);
    const pid = 'beef0000'.repeat(4);
    const total = 300;
    const utf8 = new TextEncoder();
    const now = Date.now();
    // As the version 2 client wrote them: ids 1..300 in two chunks (1..200, 201..300), p and seq -1 in the chunk.
    const events = Array.from({ length: total }, (_, n) => ({
      id: n + 1,
      topic,
      p: -1,
      seq: -1,
      sub: '',
      rec: { k: `k${n % 7}`, v: utf8.encode(JSON.stringify({ n })), e: 1 as const, ts: now },
      bytes: 64,
    }));
    // It had assigned the first 150 (partition of the key, dense sequences per partition) ...
    const pseqs: Record<string, number> = {};
    const assign = { p: new Array<number>(200).fill(-1), s: new Array<number>(200).fill(-1) };
    const perPartition: Array<typeof events> = [[], [], [], []];
    for (const e of events.slice(0, 150)) {
      const p = partitionForKey(e.rec.k, 4);
      const s = (pseqs[`${topic}/${p}`] ??= 0);
      pseqs[`${topic}/${p}`] = s + 1;
      assign.p[e.id - 1] = p;
      assign.s[e.id - 1] = s;
      perPartition[p].push(e);
    }
    // ... sent one batch per partition, all appended by the hub; only partition 0's ack came back (removed).
    const ws = await WsClient.connect(fx.hub.wsUrl);
    await ws.hello();
    for (let p = 0; p < 4; p++) {
      if (!perPartition[p].length) continue;
      const b = encodeWireBatch(
        pid,
        0,
        perPartition[p].map((e) => e.rec),
        crc32c,
      );
      await ws.request({ t: 'produce', topic, batches: [{ p, b }] });
    }
    await ws.close();
    const gone = perPartition[0].map((e) => e.id);
    const live = total - gone.length;
    const chunks = [Array.from(encodeCbor(events.slice(0, 200))), Array.from(encodeCbor(events.slice(200)))];
    const ctx = await fx.env.context();
    const page = await fx.env.open(ctx);
    await page.evaluate(
      ({ chunks, pid, pseqs, assign, gone, live, total }) =>
        new Promise<void>((resolve, reject) => {
          const req = indexedDB.open('tributary-outbox:v2', 2);
          req.onupgradeneeded = () => {
            const db = req.result;
            db.createObjectStore('chunks', { keyPath: 'first' });
            db.createObjectStore('chunkState', { keyPath: 'first' });
            db.createObjectStore('chunkGone');
            db.createObjectStore('failed', { keyPath: 'id' });
            db.createObjectStore('meta');
            db.createObjectStore('positions');
            db.createObjectStore('chunkAssign');
          };
          req.onerror = () => reject(req.error);
          req.onsuccess = () => {
            const db = req.result;
            const tx = db.transaction(['chunks', 'chunkState', 'chunkGone', 'chunkAssign', 'meta'], 'readwrite');
            tx.objectStore('chunks').put({ first: 1, data: new Uint8Array(chunks[0]) });
            tx.objectStore('chunks').put({ first: 201, data: new Uint8Array(chunks[1]) });
            // A chunk record without its state (as a crash between a removal and its chunk delete leaves
            // one, version 5): deleted at open, never read.
            tx.objectStore('chunks').put({ first: 0.5, data: new Uint8Array(chunks[1]) });
            tx.objectStore('chunkState').put({ first: 1, last: 200, live: 200 - gone.length });
            tx.objectStore('chunkState').put({ first: 201, last: 300, live: 100 });
            tx.objectStore('chunkGone').put(gone, 1);
            tx.objectStore('chunkAssign').put(assign, 1);
            tx.objectStore('meta').put(pid, 'bpid');
            tx.objectStore('meta').put(pseqs, 'pseqs');
            tx.objectStore('meta').put({ events: live, bytes: 64 * live, lastId: total }, 'stats');
            tx.oncomplete = () => {
              db.close();
              resolve();
            };
            tx.onerror = () => reject(tx.error);
          };
        }),
      { chunks, pid, pseqs, assign, gone, live, total },
    );
    // Offline first: the new code appends its own (column) chunks behind the old ones, then drains all.
    fx.proxy.block(true);
    await page.evaluate((url) => window.tb.start('v', { url, name: 'v2', backoffInitialMs: 50, backoffMaxMs: 250 }), fx.proxy.wsUrl);
    expect(await page.evaluate(() => window.tb.pending('v'))).toBe(live);
    await page.evaluate((from) => window.tb.sendMany('v', 'v2-clicks', from, 200, 7), total);
    expect(await page.evaluate(() => window.tb.pending('v'))).toBe(live + 200);
    fx.proxy.block(false);
    await page.evaluate(() => window.tb.flush('v'));
    expect(exactlyOnceProblems(await readTopic(fx.hub.url, topic), total + 200)).toBe('');
    expect(await page.evaluate(() => window.tb.client('v').producerId)).toBe(pid);
    // Every chunk record goes with its last event (version 5 deletes them after the states, apart).
    const chunkRecords = () =>
      page.evaluate(
        () =>
          new Promise<number>((resolve, reject) => {
            const req = indexedDB.open('tributary-outbox:v2');
            req.onerror = () => reject(req.error);
            req.onsuccess = () => {
              const count = req.result.transaction('chunks').objectStore('chunks').count();
              count.onsuccess = () => {
                req.result.close();
                resolve(count.result);
              };
            };
          }),
      );
    await until(async () => (await chunkRecords()) === 0, 10_000, 'the outbox chunk records deleted');
    await ctx.close();
  });
});
