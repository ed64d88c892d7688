/**
 * Restart right after kill -9: a supervisor (systemd, a container runtime,
 * a test) starts the next hub at once, before the killed one has been
 * reaped. The data-dir lock must see a zombie as gone, and must not take a
 * recycled pid for the hub that wrote the lock.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { ackOffsets } from '../../protocol/frames.ts';
import { startHub, tempDir, waitHealthy, type Hub } from '../../harness/hub.ts';
import { bytes, text, WsClient } from '../helpers/ws-client.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const hubs: Hub[] = [];
const dirs: string[] = [];
const others: ChildProcess[] = [];

afterAll(async () => {
  for (const h of hubs) await h.kill();
  for (const p of others) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

async function waitFor(pred: () => boolean, deadlineMs: number, what: string): Promise<void> {
  const end = Date.now() + deadlineMs;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function procState(pid: number): string | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0];
  } catch {
    return undefined;
  }
}

describe('restart right after kill -9', () => {
  it('a killed hub that is still a zombie (its parent has not reaped it) does not hold the lock', async () => {
    const dataDir = tempDir();
    dirs.push(dataDir);
    // `sleep` never reaps the hub it inherits from the shell: once killed,
    // the hub stays in state Z for as long as the parent lives.
    const parent = spawn(
      'sh',
      ['-c', '"$0" "$@" & echo "HUBPID=$!"; exec sleep 600', process.execPath, path.join(ROOT, 'bin/tributary.mjs'), 'serve', '--host', '127.0.0.1', '--port', '0', '--data', dataDir],
      {
        cwd: ROOT,
        env: { ...process.env, TRIBUTARY_LOG_LEVEL: 'warn' },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    others.push(parent);
    let out = '';
    parent.stdout!.on('data', (d) => (out += d));
    parent.stderr!.on('data', (d) => (out += d));
    await waitFor(() => /listening on http:\/\/[^:]+:\d+/.test(out), 20_000, `the hub to listen:\n${out}`);
    const hubPid = Number(/HUBPID=(\d+)/.exec(out)![1]);
    await waitHealthy(`http://127.0.0.1:${/listening on http:\/\/[^:]+:(\d+)/.exec(out)![1]}`);

    process.kill(hubPid, 'SIGKILL');
    await waitFor(() => procState(hubPid) === 'Z', 10_000, 'the killed hub to become a zombie');

    const next = await startHub({ dataDir });
    hubs.push(next);
    expect((await fetch(`${next.url}/healthz`)).status).toBe(200);
    expect(procState(hubPid)).toBe('Z'); // still unreaped: the lock really saw a zombie
    expect(fs.readFileSync(path.join(dataDir, '@lock'), 'utf8').split(/\s+/)[0]).toBe(String(next.proc.pid));
  }, 90_000);

  it('a lock naming a live process that started at another time (a recycled pid) is taken over', async () => {
    const dataDir = tempDir();
    dirs.push(dataDir);
    const first = await startHub({ dataDir });
    await first.stop();
    // A live process with some pid, and a lock claiming that pid with a start time it does not have.
    const live = spawn('sleep', ['600']);
    others.push(live);
    fs.writeFileSync(path.join(dataDir, '@lock'), `${live.pid}\n1\n`);
    const next = await startHub({ dataDir });
    hubs.push(next);
    expect((await fetch(`${next.url}/healthz`)).status).toBe(200);
    live.kill('SIGKILL');
  }, 90_000);

  it('a lock held by a live hub is still refused', async () => {
    const dataDir = tempDir();
    dirs.push(dataDir);
    const first = await startHub({ dataDir });
    hubs.push(first);
    await expect(startHub({ dataDir })).rejects.toThrow(/is locked by process \d+ \(another hub is using it\)/);
  }, 90_000);

  it('ten times in a row: SIGKILL, restart at once, healthy, nothing acknowledged lost', async () => {
    const dataDir = tempDir();
    dirs.push(dataDir);
    let hub = await startHub({ dataDir });
    expect((await fetch(`${hub.url}/v1/topics`, { method: 'POST', body: JSON.stringify({ name: 'crash', partitions: 2 }) })).status).toBeLessThan(300);
    const acked = new Map<string, { partition: number; offset: number }>();
    for (let round = 0; round < 10; round++) {
      const c = await WsClient.connect(hub.wsUrl);
      const recs = Array.from({ length: 10 }, (_, i) => ({ k: `k${i % 3}`, v: bytes(`r${round}:${i}`) }));
      const ack = await c.produce('crash', recs);
      ackOffsets(ack, recs.length).forEach((where, i) => acked.set(text(recs[i].v), where));
      // No waiting for the exit: the next hub starts while the killed one may be unreaped.
      hub.proc.kill('SIGKILL');
      hub = await startHub({ dataDir });
      expect((await fetch(`${hub.url}/healthz`)).status, `round ${round}`).toBe(200);
    }
    hubs.push(hub);
    const c = await WsClient.connect(hub.wsUrl);
    const s = await c.subscribe('crash', { from: 'earliest' });
    const total = s.partitions.reduce((n, p) => n + p.hw, 0);
    expect(total).toBe(acked.size);
    const recs = await c.waitForRecords(s.sub, total, 20_000);
    const found = new Map(recs.map((r) => [text(r.value), { partition: r.partition, offset: r.offset }]));
    for (const [value, where] of acked) expect(found.get(value), value).toEqual(where);
    await c.close();
  }, 300_000);
});
