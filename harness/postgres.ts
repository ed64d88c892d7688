/**
 * A real PostgreSQL server for a test: initdb in a temporary directory, then
 * postgres listening on a random loopback port (TCP only, no Unix socket),
 * fsync off (the tests check exactly-once logic, not the disk). Stopped and
 * removed by `stop()`.
 *
 * Uses Debian's binaries (/usr/lib/postgresql/<v>/bin, installed by
 * scripts/test.sh when missing). PostgreSQL refuses to run as root, so as
 * root the server runs as the `postgres` user that Debian's package creates.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';

export interface Postgres {
  port: number;
  /** postgres://postgres@127.0.0.1:PORT/postgres */
  url: string;
  /** A client connected to the server's `postgres` database (closed by stop()). */
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(sql: string, params?: unknown[]): Promise<pg.QueryResult<R>>;
  stop(): Promise<void>;
}

/** Directory of Debian's PostgreSQL server binaries (newest version), or null. */
function postgresBinDir(): string | null {
  const root = '/usr/lib/postgresql';
  if (!fs.existsSync(root)) return null;
  const versions = fs
    .readdirSync(root)
    .filter((v) => fs.existsSync(path.join(root, v, 'bin/postgres')))
    .sort((a, b) => Number(b) - Number(a));
  return versions.length ? path.join(root, versions[0], 'bin') : null;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

function runAs(): { uid?: number; gid?: number } {
  if (process.getuid?.() !== 0) return {};
  const r = spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' });
  const g = spawnSync('id', ['-g', 'postgres'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error('running as root needs the `postgres` user (Debian’s postgresql package creates it)');
  return { uid: Number(r.stdout.trim()), gid: Number(g.stdout.trim()) };
}

export async function startPostgres(): Promise<Postgres> {
  const bin = postgresBinDir();
  if (!bin) throw new Error('PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin (scripts/test.sh installs Debian’s postgresql)');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tributary-pg-'));
  const data = path.join(dir, 'data');
  const user = runAs();
  if (user.uid !== undefined) fs.chownSync(dir, user.uid, user.gid!);
  const init = spawnSync(path.join(bin, 'initdb'), ['-D', data, '-U', 'postgres', '--auth=trust', '--no-sync', '-E', 'UTF8', '--locale=C'], { encoding: 'utf8', ...user });
  if (init.status !== 0) throw new Error(`initdb failed: ${init.stderr || init.stdout}`);

  let port = 0;
  let proc: ChildProcess | null = null;
  let out = '';
  // A port picked free can be taken before postgres binds it: try a few.
  for (let attempt = 0; attempt < 5 && !proc; attempt++) {
    port = await freePort();
    out = '';
    const p = spawn(
      path.join(bin, 'postgres'),
      [
        '-D',
        data,
        '-p',
        String(port),
        '-c',
        'listen_addresses=127.0.0.1',
        '-c',
        'unix_socket_directories=',
        '-c',
        'fsync=off',
        '-c',
        'synchronous_commit=off',
        '-c',
        'full_page_writes=off',
        '-c',
        'max_connections=50',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'], ...user },
    );
    p.stdout!.on('data', (d) => (out += d));
    p.stderr!.on('data', (d) => (out += d));
    const ok = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), 30_000);
      const check = (): void => {
        if (/ready to accept connections/.test(out)) {
          clearTimeout(timer);
          resolve(true);
        }
      };
      p.stdout!.on('data', check);
      p.stderr!.on('data', check);
      p.once('exit', () => {
        clearTimeout(timer);
        resolve(false);
      });
    });
    if (ok) proc = p;
    else p.kill('SIGKILL');
  }
  if (!proc) {
    fs.rmSync(dir, { recursive: true, force: true });
    throw new Error(`postgres did not start:\n${out}`);
  }
  const url = `postgres://postgres@127.0.0.1:${port}/postgres`;
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  const server = proc;
  return {
    port,
    url,
    query: (sql, params) => client.query(sql, params as unknown[]),
    async stop() {
      await client.end().catch(() => undefined);
      const exited = new Promise((r) => server.once('exit', r));
      server.kill('SIGINT'); // fast shutdown
      await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
      if (server.exitCode === null) server.kill('SIGKILL');
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
