/**
 * The systems under test: how each is started on loopback with its own temp
 * directory, configured for the durability named in `durability`, and which
 * scenarios it can run (with the reason when it cannot).
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Target } from '../load/job.ts';
import { mintToken } from '../load/token.ts';
import { BENCH, ROOT, freePort, makeTempDir, removeTempDir, spawnManaged, waitForOutput, waitForPort, type Managed } from './procs.ts';

export type ScenarioName = 'protocol' | 'storage' | 'produce' | 'replay' | 'latency' | 'fanout' | 'connections' | 'outbox' | 'edge' | 'groups' | 'streams' | 'connectors' | 'jetstream';
/** Scenarios that another part of the project ships as a module (bench/<name>.ts), run in a process of their own. */
export type ModuleScenario = 'protocol' | 'storage' | 'outbox' | 'edge' | 'groups' | 'streams' | 'connectors' | 'jetstream';
export const MODULE_SCENARIOS: readonly ModuleScenario[] = ['protocol', 'storage', 'outbox', 'edge', 'groups', 'streams', 'connectors', 'jetstream'];

interface Running {
  target: Omit<Target, 'topic'>;
  proc: Managed;
  /** Prepares a topic/stream for a run (the hub needs its topic created with its durability). */
  createTopic(topic: string): Promise<void>;
  stop(): Promise<void>;
}

interface StartOptions {
  auth: boolean;
  /** Node servers (hub, limits) write a V8 CPU profile here when they stop. */
  cpuProfDir?: string;
  /** Names the profile file. */
  label?: string;
}

/** Node flags for a server we start: a CPU profile when asked. */
function nodeFlags(name: string, opts: StartOptions): string[] {
  if (!opts.cpuProfDir) return [];
  // One directory per run: Node writes a profile per thread (tsx's loader runs in one too); the main thread's is the largest.
  return ['--cpu-prof', '--cpu-prof-dir', path.join(opts.cpuProfDir, `${name}-${opts.label ?? 'run'}-${Date.now()}`)];
}

export interface SystemDef {
  name: string;
  role: 'subject' | 'peer' | 'limit';
  /** What an ack means on this system, as configured here. */
  durability: string;
  /** Scenario → why this system cannot run it. Absent: it can. */
  cannot: Partial<Record<ScenarioName, string>>;
  /** Why it cannot run at all on this machine (a peer not installed), or null. */
  missing?(): string | null;
  start?(opts: StartOptions): Promise<Running>;
}

const NODE_TSX = [process.execPath, '--import', 'tsx'];

/** A peer's executable: on PATH, or where Debian puts it (/usr/sbin is not on every user's PATH). */
function findBinary(name: string): string | null {
  const dirs = [...(process.env.PATH ?? '').split(':').filter(Boolean), '/usr/sbin', '/usr/bin', '/usr/local/sbin', '/usr/local/bin'];
  for (const d of dirs) {
    const f = path.join(d, name);
    try {
      fs.accessSync(f, fs.constants.X_OK);
      return f;
    } catch {
      // not here
    }
  }
  return null;
}

function binary(name: string): string {
  const f = findBinary(name);
  if (!f) throw new Error(`${name} is not installed: run bench/setup.sh`);
  return f;
}
const NO_READ_PATH = 'a limit with no read path (it only acks what it is sent)';

async function withDir<T>(prefix: string, fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = makeTempDir(prefix);
  try {
    return await fn(dir);
  } catch (e) {
    removeTempDir(dir);
    throw e;
  }
}

function running(proc: Managed, dir: string, target: Omit<Target, 'topic'>, createTopic: (t: string) => Promise<void> = async () => {}): Running {
  return {
    target: { ...target, serverPid: proc.pid },
    proc,
    createTopic,
    stop: async () => {
      await proc.stop();
      removeTempDir(dir);
    },
  };
}

// ---------- the hub ----------

const HUB_BIN = path.join(ROOT, 'bin/tributary.mjs');
export const hubAvailable = (): boolean => fs.existsSync(path.join(ROOT, 'server/cli.ts'));

async function startHub(opts: StartOptions): Promise<Running> {
  return withDir('hub', async (dir) => {
    // A throwaway secret per run; in the environment, not on the command line.
    const authSecret = opts.auth ? randomBytes(32).toString('hex') : undefined;
    const args = [
      HUB_BIN,
      'serve',
      '--host',
      '127.0.0.1',
      '--port',
      '0',
      '--data',
      dir,
      '--log-level',
      'warn',
      '--topic-fsync',
      'always',
      // Room for the connections scenario (10,000 + the harness, all from 127.0.0.1, opened as fast as they
      // can be) and for 64 produce requests in flight per socket.
      '--max-connections',
      '200000',
      '--max-in-flight-per-connection',
      '1024',
      '--connections-per-sec-per-address',
      '1000000',
      '--connections-burst-per-address',
      '1000000',
    ];
    const env: Record<string, string> = authSecret ? { TRIBUTARY_AUTH: 'jwt', TRIBUTARY_AUTH_SECRET: authSecret, TRIBUTARY_ALLOWED_ORIGINS: 'http://127.0.0.1' } : { TRIBUTARY_AUTH: 'none' };
    const proc = spawnManaged('hub', process.execPath, [...nodeFlags('hub', opts), ...args], { raiseFdLimit: true, env });
    const m = await waitForOutput(proc, /listening on http:\/\/[^:\s]+:(\d+)/, 30_000);
    const port = Number(m[1]);
    const url = `http://127.0.0.1:${port}`;
    const deadline = Date.now() + 30_000;
    for (;;) {
      const ok = await fetch(`${url}/healthz`).then(
        (r) => r.status === 200,
        () => false,
      );
      if (ok) break;
      if (Date.now() > deadline) throw new Error(`hub not healthy within 30 s:\n${proc.output().slice(-2000)}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    const createTopic = async (topic: string): Promise<void> => {
      const headers: Record<string, string> = { 'content-type': 'application/json' };
      if (authSecret) headers.authorization = `Bearer ${await mintToken(authSecret, 'bench-admin', topic, true)}`;
      const res = await fetch(`${url}/v1/topics`, {
        method: 'POST',
        headers,
        body: JSON.stringify({ name: topic, partitions: 1, config: { fsync: 'always' } }),
      });
      if (res.status !== 201 && res.status !== 409) throw new Error(`hub: creating topic ${topic} answered ${res.status} ${await res.text()}`);
    };
    return running(proc, dir, { kind: 'ws', port, path: '/v1/ws', hubProtocol: true, ...(authSecret ? { authSecret } : {}) }, createTopic);
  });
}

// ---------- peers ----------

async function startNats(): Promise<Running> {
  return withDir('nats', async (dir) => {
    const port = await freePort();
    const proc = spawnManaged('nats-server', binary('nats-server'), ['-a', '127.0.0.1', '-p', String(port), '-js', '-sd', dir], { raiseFdLimit: true });
    await waitForOutput(proc, /Server is ready/);
    await waitForPort(port);
    return running(proc, dir, { kind: 'nats', port });
  });
}

function startRedis(fsync: 'always' | 'everysec'): () => Promise<Running> {
  return () =>
    withDir(`redis-${fsync}`, async (dir) => {
      const port = await freePort();
      const args = [
        '--port',
        String(port),
        '--bind',
        '127.0.0.1',
        '--dir',
        dir,
        '--daemonize',
        'no',
        '--protected-mode',
        'no',
        '--appendonly',
        'yes',
        '--appendfsync',
        fsync,
        '--save',
        '',
        '--maxclients',
        '20000',
        '--logfile',
        '',
      ];
      const proc = spawnManaged(`redis-${fsync}`, binary('redis-server'), args, { raiseFdLimit: true });
      await waitForOutput(proc, /Ready to accept connections/);
      return running(proc, dir, { kind: 'redis', port });
    });
}

async function startMosquitto(): Promise<Running> {
  return withDir('mosquitto', async (dir) => {
    const port = await freePort();
    const conf = path.join(dir, 'mosquitto.conf');
    const lines = [
      `listener ${port} 127.0.0.1`,
      'allow_anonymous true',
      'persistence true',
      `persistence_location ${dir}/`,
      'max_inflight_messages 1000',
      'max_queued_messages 100000',
      'log_type error',
      'log_dest stderr',
    ];
    // As root mosquitto switches to its own user, which could not write the temp dir.
    if (process.getuid?.() === 0) lines.push('user root');
    fs.writeFileSync(conf, lines.join('\n') + '\n');
    const proc = spawnManaged('mosquitto', binary('mosquitto'), ['-c', conf], { raiseFdLimit: true });
    await waitForPort(port);
    return running(proc, dir, { kind: 'mqtt', port });
  });
}

// ---------- limits ----------

async function startUwsEcho(opts: StartOptions): Promise<Running> {
  return withDir('uws-echo', async (dir) => {
    const proc = spawnManaged('uws-echo', NODE_TSX[0], [...nodeFlags('uws-echo', opts), ...NODE_TSX.slice(1), path.join(BENCH, 'limits/uws-echo.ts')], { raiseFdLimit: true });
    const m = await waitForOutput(proc, /listening on (\d+)/);
    return running(proc, dir, { kind: 'ws', port: Number(m[1]), path: '/v1/ws' });
  });
}

async function startDurableAppend(opts: StartOptions): Promise<Running> {
  return withDir('durable-append', async (dir) => {
    const proc = spawnManaged('durable-append', NODE_TSX[0], [...nodeFlags('durable-append', opts), ...NODE_TSX.slice(1), path.join(BENCH, 'limits/durable-append.ts'), dir], { raiseFdLimit: true });
    const m = await waitForOutput(proc, /listening on (\d+)/);
    return running(proc, dir, { kind: 'ws', port: Number(m[1]), path: '/v1/ws' });
  });
}

export const SYSTEMS: SystemDef[] = [
  {
    name: 'hub',
    role: 'subject',
    durability: 'fsync "always": ack after group-committed fdatasync (topic config), 1 partition',
    cannot: {},
    start: startHub,
  },
  {
    name: 'nats-jetstream',
    missing: () => (findBinary('nats-server') ? null : 'nats-server is not installed: run bench/setup.sh'),
    role: 'peer',
    durability: 'JetStream file storage, PubAck per message; nats-server 2.9 has no fsync setting: written to the page cache, synced by the OS / on its 2-min timer',
    cannot: {},
    start: startNats,
  },
  {
    name: 'redis-aof-always',
    missing: () => (findBinary('redis-server') ? null : 'redis-server is not installed: run bench/setup.sh'),
    role: 'peer',
    durability: 'Redis Streams, AOF appendfsync always (fsync before replying, shared by a pipeline)',
    cannot: {},
    start: startRedis('always'),
  },
  {
    name: 'redis-aof-everysec',
    missing: () => (findBinary('redis-server') ? null : 'redis-server is not installed: run bench/setup.sh'),
    role: 'peer',
    durability: 'Redis Streams, AOF appendfsync everysec (up to ~1 s of acked writes can be lost)',
    cannot: {},
    start: startRedis('everysec'),
  },
  {
    name: 'mosquitto',
    missing: () => (findBinary('mosquitto') ? null : 'mosquitto is not installed: run bench/setup.sh'),
    role: 'peer',
    durability: 'MQTT QoS 1 (PUBACK), persistence on: in memory, saved to disk every autosave_interval (1800 s) and at shutdown',
    cannot: { replay: 'MQTT keeps no history (only one retained message per topic)' },
    start: startMosquitto,
  },
  {
    name: 'uws-echo',
    role: 'limit',
    durability: 'none (transport limit: each produce frame echoed back)',
    cannot: { replay: NO_READ_PATH, latency: NO_READ_PATH, fanout: NO_READ_PATH },
    start: startUwsEcho,
  },
  {
    name: 'raw-disk',
    role: 'limit',
    durability: "bench/storage.ts's raw limit: one writer, sequential writes of a 100-record batch's bytes, without and with fdatasync after each",
    cannot: {
      replay: NO_READ_PATH,
      latency: NO_READ_PATH,
      fanout: NO_READ_PATH,
      connections: 'not a server',
    },
  },
  {
    name: 'durable-append',
    role: 'limit',
    durability: 'group-committed fdatasync before each ack (design ceiling: uWS + CBOR decode + CRC-32C + one file)',
    cannot: { replay: NO_READ_PATH, latency: NO_READ_PATH, fanout: NO_READ_PATH, connections: "the per-connection cost is the uws-echo row's" },
    start: startDurableAppend,
  },
];

export function systemByName(name: string): SystemDef {
  const s = SYSTEMS.find((x) => x.name === name);
  if (!s) throw new Error(`unknown system ${name}; known: ${SYSTEMS.map((x) => x.name).join(', ')}`);
  return s;
}
