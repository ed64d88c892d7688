/**
 * Logs for whoever reads them: JSON lines when the hub's stdout is a pipe (a
 * collector, these tests), human-readable lines when it is a terminal.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { startHub, tempDir } from '../../harness/hub.ts';

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

  it('is one readable line per entry on a terminal', () => {
    const data = tempDir();
    // script(1) gives the hub a pseudo-terminal as stdout; the hub stops itself once it listens.
    const cmd = `timeout -s INT 8 node bin/tributary.mjs serve --port 0 --data ${data}`;
    let out = '';
    try {
      out = execFileSync('script', ['-qec', cmd, '/dev/null'], { encoding: 'utf8', env: { ...process.env, TRIBUTARY_LOG_LEVEL: 'info' }, timeout: 20_000 });
    } catch (err) {
      out = String((err as { stdout?: string }).stdout ?? '');
    }
    fs.rmSync(data, { recursive: true, force: true });

    const plain = out.replace(/\u001b\[[0-9;]*m/g, '');
    expect(plain).toMatch(/\[\d\d:\d\d:\d\d\.\d{3}\] WARN: AUTH IS OFF/);
    expect(plain).not.toMatch(/^\{"level"/m);
  }, 30_000);
});
