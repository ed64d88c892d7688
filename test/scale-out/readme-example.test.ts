/**
 * The README's "Many hubs over a NATS JetStream cluster" example, run as
 * written: scripts/nats-cluster.sh (on free ports instead of 4222-4224),
 * two hubs with the --engine value it prints, and the example's curl lines
 * with hub A's and hub B's ports for 8080 and 8081.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { startHub, type Hub } from '../../harness/hub.ts';
import { waitFor } from '../../harness/wait.ts';
import { readmeBlocks, ROOT } from '../helpers/readme.ts';

let cluster: ChildProcess | null = null;
const hubs: Hub[] = [];

function exampleLines(): string[] {
  return readmeBlocks('Many hubs over a NATS JetStream cluster', 'sh')[0]
    .split('\n')
    .map((l) => l.replace(/\s+#.*$/, '').trim())
    .filter((l) => l !== '');
}

/** Three consecutive free ports for clients (the script uses BASE_PORT..+2). */
async function freeRange(): Promise<number> {
  for (let i = 0; i < 50; i++) {
    const base = 20_000 + Math.floor(Math.random() * 20_000);
    const free = await Promise.all([0, 1, 2, 2000, 2001, 2002].map((d) => isFree(base + d)));
    if (free.every(Boolean)) return base;
  }
  throw new Error('no free port range');
}

async function isFree(port: number): Promise<boolean> {
  const net = await import('node:net');
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

afterAll(async () => {
  for (const h of hubs) {
    await h.stop();
    h.cleanup();
  }
  if (cluster && cluster.exitCode === null) {
    const exited = new Promise((r) => cluster!.once('exit', r));
    process.kill(-cluster.pid!, 'SIGTERM');
    await exited;
  }
});

describe('README: many hubs over a NATS JetStream cluster', () => {
  it('runs the example: hub B serves what was produced through hub A', async () => {
    const lines = exampleLines();
    expect(lines[0]).toMatch(/^scripts\/nats-cluster\.sh &$/);
    const base = await freeRange();
    cluster = spawn('bash', [path.join(ROOT, 'scripts/nats-cluster.sh')], {
      env: { ...process.env, BASE_PORT: String(base), ROUTE_BASE: String(base + 2000) },
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    cluster.stdout!.on('data', (d) => (out += d));
    cluster.stderr!.on('data', (d) => (out += d));
    await waitFor(() => /--engine (\S+)/.test(out), 20_000, 'the script printing the engine value');
    const engine = /--engine (\S+)/.exec(out)![1];
    expect(engine).toBe([0, 1, 2].map((i) => `nats://127.0.0.1:${base + i}`).join(','));
    const serves = lines.filter((l) => l.startsWith('tributary serve'));
    expect(serves).toHaveLength(2);
    for (const l of serves) expect(l).toContain(`--engine ${[4222, 4223, 4224].map((p) => `nats://127.0.0.1:${p}`).join(',')}`);
    // The cluster needs a moment to elect its JetStream leader; a hub waits for it in its own start-up.
    const a = await startHub({ args: ['--engine', engine] });
    const b = await startHub({ args: ['--engine', engine] });
    hubs.push(a, b);
    let last = '';
    for (const l of lines.filter((x) => x.startsWith('curl'))) {
      const cmd = l.replace(/localhost:8080/g, `127.0.0.1:${a.port}`).replace(/localhost:8081/g, `127.0.0.1:${b.port}`);
      last = execFileSync('bash', ['-c', `${cmd} --silent --show-error --fail`], { encoding: 'utf8' });
    }
    const body = JSON.parse(last) as { records: Array<{ offset: number; key: string; value: unknown }> };
    expect(body.records).toEqual([expect.objectContaining({ offset: 0, key: 'a', value: { n: 1 } })]);
  }, 60_000);
});
