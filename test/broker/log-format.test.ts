/**
 * Logs for whoever reads them: JSON lines when the hub's stdout is a pipe (a
 * collector, these tests), human-readable lines when it is a terminal.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { startHub, tempDir } from '../../harness/hub.ts';
import { waitFor } from '../../harness/wait.ts';

describe('log format', () => {
  it('is JSON lines on a pipe', async () => {
    const hub = await startHub({ env: { TRIBUTARY_LOG_LEVEL: 'info' } });
    await hub.stop();
    hub.cleanup();
    const lines = hub
      .output()
      .split('\n')
      .filter((l) => l.startsWith('{'));
    expect(lines.length).toBeGreaterThan(0);
    for (const l of lines) expect(JSON.parse(l)).toHaveProperty('msg');
  });

  it('is one readable line per entry on a terminal', async () => {
    const data = tempDir();
    // script(1) gives the hub a pseudo-terminal as stdout; the hub is stopped once it has logged its start.
    const proc = spawn('script', ['-qec', `exec node bin/tributary.mjs serve --port 0 --data ${data}`, '/dev/null'], {
      env: { ...process.env, TRIBUTARY_LOG_LEVEL: 'info' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    proc.stdout.on('data', (d) => (out += d));
    const exited = new Promise((r) => proc.once('exit', r));
    try {
      await waitFor(() => /listening on/.test(out), 45_000, 'the hub to log that it listens');
    } finally {
      proc.kill('SIGINT');
      await exited;
      fs.rmSync(data, { recursive: true, force: true });
    }

    const plain = out.replace(/\u001b\[[0-9;]*m/g, '');
    expect(plain).toMatch(/\[\d\d:\d\d:\d\d\.\d{3}\] WARN: AUTH IS OFF/);
    expect(plain).not.toMatch(/^\{"level"/m);
  }, 60_000);
});
