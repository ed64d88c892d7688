/**
 * Outboxes that outlive their producer: a file outbox across a SIGKILLed
 * process (queued offline, or killed in the middle of draining through a
 * proxy that cuts connections), and a memory outbox across clients of one
 * process. Each ends with the whole topic read back: every event once, per
 * key in order.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHub, tempDir, type Hub } from '../../harness/hub.ts';
import { startTcpProxy, type TcpProxy } from '../../harness/tcp-proxy.ts';
import { createClient } from '../../web-client/node.ts';
import { createTopic, exactlyOnceProblems, readTopic } from '../../harness/topic-reader.ts';
import { WsClient } from '../helpers/ws-client.ts';
import { crc32c, encodeCbor } from '../../protocol/index.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const CHILD = path.join(ROOT, 'test/web-client/outbox-child.ts');

let hub: Hub;
let proxy: TcpProxy;
let dir: string;
const children = new Set<ChildProcess>();

function child(args: string[]): { proc: ChildProcess; line: (re: RegExp) => Promise<string>; exited: Promise<number | null> } {
  const proc = spawn(process.execPath, ['--import', 'tsx', CHILD, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(proc);
  let out = '';
  proc.stdout!.on('data', (d) => (out += d));
  proc.stderr!.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
  const line = (re: RegExp) =>
    new Promise<string>((resolve, reject) => {
      const check = () => {
        const m = re.exec(out);
        if (m) resolve(m[0]);
      };
      proc.stdout!.on('data', check);
      check();
      void exited.then(() => setTimeout(() => reject(new Error(`child exited without ${re}:\n${out}`)), 50));
    });
  return { proc, line, exited };
}

/** The first payload byte of each whole journal entry: a CBOR map (0xa0-0xbf) or a binary entry's kind (1 append). */
function journalKinds(file: string): number[] {
  const b = fs.readFileSync(file);
  const kinds: number[] = [];
  for (let pos = 0; pos + 8 < b.length && pos + 8 + b.readUInt32BE(pos) <= b.length; pos += 8 + b.readUInt32BE(pos)) kinds.push(b[pos + 8]);
  return kinds;
}

async function kill(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  const gone = new Promise((r) => proc.once('exit', r));
  proc.kill('SIGKILL');
  await gone;
}

beforeAll(async () => {
  hub = await startHub();
  proxy = await startTcpProxy(hub.port);
  dir = tempDir('tributary-outbox-');
});
afterAll(async () => {
  for (const c of children) await kill(c);
  await proxy?.close();
  await hub?.stop();
  hub?.cleanup();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

describe('outboxes across restarts (Node, real hub)', () => {
  it('a file outbox filled while the hub is unreachable survives SIGKILL (and a torn tail) and drains once in the next process', async () => {
    await createTopic(hub.url, 'gw-offline', 2);
    const file = path.join(dir, 'offline.outbox');
    proxy.block(true);
    proxy.cutAll();
    const a = child([proxy.wsUrl, file, 'gw-offline', '0', '500', 'send']);
    await a.line(/queued/);
    await kill(a.proc);
    // The events are journaled as binary append entries (their record bodies) after the CBOR snapshot.
    const kinds = journalKinds(file);
    expect(kinds[0]).toBeGreaterThanOrEqual(0xa0);
    expect(kinds.length).toBeGreaterThan(1);
    expect(kinds.slice(1).every((k) => k === 1)).toBe(true);
    // A crash in the middle of a later write leaves a torn entry at the end of the journal.
    fs.appendFileSync(file, Buffer.from([0, 0, 0, 200, 1, 2, 3, 4, 5, 6, 7]));
    proxy.block(false);
    const b = child([proxy.wsUrl, file, 'gw-offline', '0', '0', 'flush']);
    expect(await b.line(/flushed \d+/)).toBe('flushed 0');
    expect(await b.exited).toBe(0);
    expect(exactlyOnceProblems(await readTopic(hub.url, 'gw-offline'), 500)).toBe('');
  });

  it('a process SIGKILLed mid-drain behind a connection-cutting proxy leaves nothing stranded and nothing twice', async () => {
    await createTopic(hub.url, 'gw-chaos', 3);
    const file = path.join(dir, 'chaos.outbox');
    proxy.chaos({ minBytes: 2_000, maxBytes: 60_000, seed: 7 });
    const a = child([proxy.wsUrl, file, 'gw-chaos', '0', '3000', 'send']);
    await a.line(/queued/);
    await a.line(/acked/); // mid-drain: something went through the chaos, more is in flight or queued
    await kill(a.proc);
    // A second life sends more, then dies as well, still mid-drain.
    const b = child([proxy.wsUrl, file, 'gw-chaos', '3000', '1000', 'send']);
    await b.line(/queued/);
    await b.line(/acked/);
    await kill(b.proc);
    proxy.chaos(undefined);
    const c = child([proxy.wsUrl, file, 'gw-chaos', '0', '0', 'flush']);
    expect(await c.line(/flushed \d+/)).toBe('flushed 0');
    expect(exactlyOnceProblems(await readTopic(hub.url, 'gw-chaos'), 4000)).toBe('');
    expect(proxy.cuts).toBeGreaterThan(0);
  }, 60_000);

  it('the file journal is compacted as it drains and keeps its producer id and sequences', async () => {
    const file = path.join(dir, 'compact.outbox');
    const a = createClient({ url: hub.wsUrl, outbox: { file }, name: 'compact' });
    const pid = await a.producerId;
    const sends: Array<Promise<void>> = [];
    for (let n = 0; n < 30_000; n++) sends.push(a.send('gw-compact', { key: `k${n % 5}`, value: { n, pad: 'x'.repeat(40) } }));
    await Promise.all(sends);
    expect(fs.statSync(file).size).toBeGreaterThan(1024 * 1024);
    await a.flush();
    await a.close();
    expect(fs.statSync(file).size).toBeLessThan(256 * 1024); // rewritten as a snapshot once mostly acked
    const b = createClient({ url: hub.wsUrl, outbox: { file }, name: 'compact' });
    expect(await b.producerId).toBe(pid);
    expect(await b.pending()).toBe(0);
    await b.send('gw-compact', { key: 'k0', value: { n: 30_000, pad: '' } });
    await b.flush();
    await b.close();
    expect(exactlyOnceProblems(await readTopic(hub.url, 'gw-compact'), 30_001)).toBe('');
  }, 60_000);

  it('a memory outbox keeps its events and producer id for the next client of the same name in the process', async () => {
    await createTopic(hub.url, 'mem-keep', 1);
    proxy.block(true);
    proxy.cutAll();
    const a = createClient({ url: proxy.wsUrl, outbox: 'memory', name: 'mem-keep', backoffMaxMs: 200 });
    for (let n = 0; n < 100; n++) await a.send('mem-keep', { key: 'k', value: { n } });
    await a.close();
    proxy.block(false);
    const b = createClient({ url: proxy.wsUrl, outbox: 'memory', name: 'mem-keep', backoffMaxMs: 200 });
    expect(await b.pending()).toBe(100);
    await b.flush();
    await b.close();
    expect(exactlyOnceProblems(await readTopic(hub.url, 'mem-keep'), 100)).toBe('');
  });

  it("an older client's file outbox (records form, sequences per topic) drains under its producer id, then new events in the batch form under a new one", async () => {
    await createTopic(hub.url, 'gw-legacy', 3);
    const file = path.join(dir, 'legacy.outbox');
    const oldPid = 'feedc0de'.repeat(4);
    const total = 600;
    const utf8 = new TextEncoder();
    const now = Date.now();
    const old = Array.from({ length: total }, (_, n) => ({
      id: n + 1,
      topic: 'gw-legacy',
      seq: n,
      sub: '',
      rec: { k: `k${n % 7}`, v: utf8.encode(JSON.stringify({ n })), e: 1 as const, ts: now },
      bytes: 64,
    }));
    // The older client had sent its first 250 events in the records form and died before the acks came back.
    const ws = await WsClient.connect(hub.wsUrl);
    await ws.hello();
    await ws.produce(
      'gw-legacy',
      old.slice(0, 200).map((e) => e.rec),
      { pid: oldPid, seq: 0 },
    );
    await ws.produce(
      'gw-legacy',
      old.slice(200, 250).map((e) => e.rec),
      { pid: oldPid, seq: 200 },
    );
    await ws.close();
    // Its journal, format 1: a snapshot without `v`, events without `p`, sequences per topic.
    const payload = encodeCbor({ o: 'snap', pid: oldPid, seqs: { 'gw-legacy': total }, lastId: total, events: old, failed: [], positions: {} });
    const head = Buffer.alloc(8);
    head.writeUInt32BE(payload.length, 0);
    head.writeUInt32BE(crc32c(payload), 4);
    fs.writeFileSync(file, Buffer.concat([head, payload]));

    const c = createClient({ url: hub.wsUrl, outbox: { file }, name: 'legacy' });
    expect(await c.producerId).not.toBe(oldPid);
    expect(await c.pending()).toBe(total);
    await c.sendMany(
      'gw-legacy',
      Array.from({ length: 400 }, (_, i) => ({ key: `k${(total + i) % 7}`, value: { n: total + i } })),
    );
    await c.flush();
    await c.close();
    // The 250 the hub had were matched as retries under the old id; everything else once, per key in send order.
    expect(exactlyOnceProblems(await readTopic(hub.url, 'gw-legacy'), total + 400)).toBe('');
  });
});
