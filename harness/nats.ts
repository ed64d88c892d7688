/**
 * Real nats-server processes with JetStream for tests: a single node or a
 * cluster of N on loopback, random ports, each node's store in its own temp
 * dir, removed on stop(). Two clusters can be joined by a gateway (two
 * "regions"). Nodes can be killed and restarted on the same ports and store.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { connect } from 'nats';
import { waitFor } from './wait.ts';

const NATS_SERVER = process.env.NATS_SERVER_BIN ?? 'nats-server';
const START_TIMEOUT_MS = 20_000;

interface NatsNode {
  name: string;
  port: number;
  url: string;
  /** SIGKILL; the store dir stays for restart(). */
  kill(): Promise<void>;
  /** Starts the node again on the same ports and store. */
  restart(): Promise<void>;
  running(): boolean;
  output(): string;
  /** Writes the node's config with JetStream on or off; takes effect at the next restart() (same name, ports, store). */
  setJetStream(on: boolean): void;
}

export interface NatsCluster {
  name: string;
  nodes: NatsNode[];
  /** Every node's URL, comma-separated (what `--engine` takes). */
  servers: string;
  /** The gateway port of this cluster's first node (other regions point at it). */
  gatewayPort: number;
  /**
   * Resolves once a stream with a replica on every node can be placed: after
   * a node's restart, it has rejoined (until then an R3 topic is refused
   * with "no suitable peers for placement").
   */
  placeable(deadlineMs?: number): Promise<void>;
  stop(): Promise<void>;
}

export interface NatsClusterOptions {
  /** Nodes in the cluster: 1 starts a standalone JetStream server. Default 3. */
  nodes?: number;
  /** Cluster (and gateway) name. Default "c" + random. */
  name?: string;
  /** Other clusters to join by gateway: name → a gateway URL of theirs. */
  gateways?: Record<string, string>;
  /** Reserve a gateway listener even without remotes (the other side dials in). */
  gateway?: boolean;
  /** Nodes (indexes) started with JetStream disabled: routed to the others but no JetStream peer until setJetStream(true) and a restart. */
  jetStreamOff?: number[];
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

interface NodeConfig {
  name: string;
  cluster: string;
  port: number;
  clusterPort: number;
  routes: number[];
  storeDir: string;
  gatewayPort: number;
  gateways?: Record<string, string>;
  jetStream: boolean;
}

function nodeConfig(o: NodeConfig): string {
  const lines = [
    `server_name: ${o.name}`,
    // A tag naming the node, so a stream can be placed on a chosen one (placement: { tags: ['node:<name>'] }).
    `server_tags: ["node:${o.name}"]`,
    `listen: 127.0.0.1:${o.port}`,
    // Small test machine: bound what JetStream may take (the defaults size themselves to the host).
    o.jetStream ? `jetstream { store_dir: "${o.storeDir}", max_memory_store: 256MB, max_file_store: 4GB }` : 'jetstream: disabled',
  ];
  if (o.routes.length > 0) {
    lines.push(`cluster { name: ${o.cluster}, listen: 127.0.0.1:${o.clusterPort}, routes: [${o.routes.map((p) => `nats-route://127.0.0.1:${p}`).join(', ')}] }`);
  }
  if (o.gatewayPort > 0) {
    const remotes = Object.entries(o.gateways ?? {}).map(([n, url]) => `{ name: ${n}, url: "${url}" }`);
    lines.push(`gateway { name: ${o.cluster}, listen: 127.0.0.1:${o.gatewayPort}, gateways: [${remotes.join(', ')}] }`);
  }
  return lines.join('\n') + '\n';
}

/** Starts tried before giving up when a port picked free was taken before nats-server bound it. */
const PORT_RACE_ATTEMPTS = 3;

export async function startNatsCluster(opts: NatsClusterOptions = {}): Promise<NatsCluster> {
  // freePort() closes its probe before nats-server binds the port: another test file's servers or any
  // outgoing connection's ephemeral port may take it meanwhile (seen with the JetStream files run in parallel).
  for (let attempt = 1; ; attempt++) {
    try {
      return await startNatsClusterOnce(opts);
    } catch (err) {
      if (attempt >= PORT_RACE_ATTEMPTS || !/address already in use/i.test(String(err))) throw err;
    }
  }
}

async function startNatsClusterOnce(opts: NatsClusterOptions): Promise<NatsCluster> {
  const n = opts.nodes ?? 3;
  const cluster = opts.name ?? `c${Math.random().toString(36).slice(2, 8)}`;
  const root = fs.mkdtempSync(path.join(os.tmpdir(), `tributary-nats-${cluster}-`));
  const ports: Array<{ port: number; clusterPort: number; gatewayPort: number }> = [];
  const wantGateway = opts.gateway || Object.keys(opts.gateways ?? {}).length > 0;
  for (let i = 0; i < n; i++) ports.push({ port: await freePort(), clusterPort: n > 1 || wantGateway ? await freePort() : 0, gatewayPort: wantGateway ? await freePort() : 0 });
  const nodes: NatsNode[] = [];
  for (let i = 0; i < n; i++) {
    const name = `${cluster}-n${i}`;
    const storeDir = path.join(root, name);
    fs.mkdirSync(storeDir, { recursive: true });
    const conf = path.join(root, `${name}.conf`);
    // A lone node of a region: a route to itself (ignored once connected) makes JetStream accept clustered mode.
    const routes = n > 1 ? ports.filter((_, j) => j !== i).map((p) => p.clusterPort) : wantGateway ? [ports[i].clusterPort] : [];
    const cfg: NodeConfig = {
      name,
      cluster,
      port: ports[i].port,
      clusterPort: ports[i].clusterPort,
      routes,
      storeDir,
      gatewayPort: ports[i].gatewayPort,
      gateways: opts.gateways,
      jetStream: !opts.jetStreamOff?.includes(i),
    };
    const writeConfig = (jetStream: boolean): void => fs.writeFileSync(conf, nodeConfig({ ...cfg, jetStream }));
    writeConfig(cfg.jetStream);
    nodes.push(makeNode(name, ports[i].port, conf, writeConfig));
  }
  try {
    await Promise.all(nodes.map((nd) => nd.restart()));
    // A cluster joining others by gateway joins their meta group (it may log no leader of its own).
    if (Object.keys(opts.gateways ?? {}).length > 0)
      await placeableIn(
        cluster,
        nodes.map((nd) => nd.url),
        1,
      );
    else if (n > 1) await waitFor(() => nodes.some((nd) => /metadata leader/.test(nd.output())), START_TIMEOUT_MS, 'a JetStream meta leader');
  } catch (err) {
    await Promise.all(nodes.map((nd) => nd.kill()));
    fs.rmSync(root, { recursive: true, force: true });
    throw err;
  }
  const servers = nodes.map((nd) => nd.url);
  return {
    name: cluster,
    nodes,
    servers: servers.join(','),
    gatewayPort: ports[0].gatewayPort,
    // A lone server without a cluster block places anything it can store.
    placeable: async (deadlineMs = START_TIMEOUT_MS) => {
      if (n > 1 || wantGateway) await placeableIn(cluster, servers, n, deadlineMs);
    },
    stop: async () => {
      await Promise.all(nodes.map((nd) => nd.kill()));
      fs.rmSync(root, { recursive: true, force: true });
    },
  };
}

/**
 * Ready when a stream of `replicas` can be placed in `cluster`. A cluster
 * joining others by gateway joins their JetStream meta group a moment after
 * it starts, and a restarted node rejoins its cluster a moment after it is
 * up: until then requests miss streams and placement fails.
 */
async function placeableIn(cluster: string, servers: string[], replicas: number, deadlineMs = START_TIMEOUT_MS): Promise<void> {
  const nc = await connect({ servers });
  try {
    const name = `READY_${cluster}_R${replicas}`;
    await waitFor(
      async () => {
        try {
          const jsm = await nc.jetstreamManager();
          // An add whose reply timed out may have created it: an existing one counts too.
          await jsm.streams.add({ name, subjects: [`ready.${cluster}.r${replicas}`], num_replicas: replicas, placement: { cluster, tags: [] } }).catch((err) => {
            if (!/already in use/i.test(String(err))) throw err;
          });
          await jsm.streams.delete(name);
          return true;
        } catch {
          return false;
        }
      },
      deadlineMs,
      `JetStream placement of ${replicas} replica(s) in cluster ${cluster}`,
    );
  } finally {
    await nc.close();
  }
}

/**
 * Two regions form one JetStream super-cluster only once the second's
 * servers joined the first's meta group (they may first elect one of their
 * own): ready when a stream placed in `b` through `a` is seen from `b`.
 */
export async function waitForSuperCluster(a: NatsCluster, b: NatsCluster, deadlineMs = 60_000): Promise<void> {
  const na = await connect({ servers: a.servers.split(',') });
  const nb = await connect({ servers: b.servers.split(',') });
  const name = `JOINED_${b.name}`;
  try {
    await waitFor(
      async () => {
        try {
          const ja = await na.jetstreamManager();
          await ja.streams.add({ name, subjects: [`joined.${b.name}`], num_replicas: 1, placement: { cluster: b.name, tags: [] } }).catch((err) => {
            if (!/already in use/i.test(String(err))) throw err;
          });
          const si = await (await nb.jetstreamManager()).streams.info(name);
          return si.cluster?.name === b.name;
        } catch {
          return false;
        }
      },
      deadlineMs,
      `region ${b.name} joined to region ${a.name}`,
    );
    await (await na.jetstreamManager()).streams.delete(name).catch(() => false);
  } finally {
    await na.close();
    await nb.close();
  }
}

function makeNode(name: string, port: number, conf: string, writeConfig: (jetStream: boolean) => void): NatsNode {
  let proc: ChildProcess | null = null;
  let exited: Promise<void> = Promise.resolve();
  let out = '';
  const running = (): boolean => proc !== null && proc.exitCode === null && proc.signalCode === null;
  return {
    name,
    port,
    url: `nats://127.0.0.1:${port}`,
    running,
    output: () => out,
    setJetStream: writeConfig,
    kill: async () => {
      if (running()) proc!.kill('SIGKILL');
      await exited;
    },
    restart: async () => {
      if (running()) throw new Error(`${name} is running`);
      out = '';
      const p = spawn(NATS_SERVER, ['-c', conf], { stdio: ['ignore', 'pipe', 'pipe'] });
      proc = p;
      p.stdout!.on('data', (d) => (out += d));
      p.stderr!.on('data', (d) => (out += d));
      exited = new Promise((resolve) => p.once('exit', () => resolve()));
      await waitFor(() => /Server is ready/.test(out) || !running(), START_TIMEOUT_MS, `${name} ready`);
      if (!running()) throw new Error(`nats-server ${name} exited:\n${out}`);
    },
  };
}
