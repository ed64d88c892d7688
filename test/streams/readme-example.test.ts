/**
 * The README's stream-processing example, run as it is written (only the
 * hub's address changed) against a real hub; it must print the kitchen's
 * minute as the comment beside the console.log says.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHub, type Hub } from '../../harness/hub.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
let hub: Hub;
let dir: string;

beforeAll(async () => {
  hub = await startHub();
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tributary-readme-'));
});
afterAll(async () => {
  await hub?.stop();
  hub?.cleanup();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

function example(): string {
  const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('## Stream processing'));
  const m = /```ts\n([\s\S]*?)```/.exec(section);
  if (!m) throw new Error('no ts block under ## Stream processing');
  return m[1];
}

describe('README stream-processing example', () => {
  it('runs against a real hub and prints what its comment says', async () => {
    let code = example()
      .replaceAll('http://127.0.0.1:8080', hub.url)
      .replaceAll('ws://127.0.0.1:8080/v1/ws', hub.wsUrl)
      .replaceAll("'./web-client/node.ts'", JSON.stringify(path.join(ROOT, 'web-client/node.ts')))
      .replaceAll("'./streams/index.ts'", JSON.stringify(path.join(ROOT, 'streams/index.ts')));
    const groups = (await fetch(`${hub.url}/v1/groups`)).status === 200;
    // Until the hub has consumer groups (issue 14), one instance owns every partition.
    if (!groups) code = code.replace("applicationId: 'temps',", "applicationId: 'temps', staticAssignment: 'all',");
    const file = path.join(dir, 'example.mts');
    fs.writeFileSync(file, code);
    const out = await new Promise<string>((resolve, reject) => {
      const p = spawn(process.execPath, ['--import', 'tsx', file], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
      let text = '';
      p.stdout.on('data', (d) => (text += d));
      p.stderr.on('data', (d) => (text += d));
      const timer = setTimeout(() => p.kill('SIGKILL'), 60_000);
      p.on('close', (c) => {
        // after stdout and stderr have ended, unlike 'exit'
        clearTimeout(timer);
        if (c === 0) resolve(text);
        else reject(new Error(`example exited with ${c}:\n${text}`));
      });
    });
    expect(out.replace(/\s+/g, ' ')).toContain("{ key: 'kitchen', start: 1700000040000, end: 1700000100000, value: { n: 2, sum: 44 } }");
    // The metrics line: 3 sensor records and the 3 that went through the repartition topic.
    expect(out).toContain('tributary_streams_processed_records_total{application="temps"} 6');
  }, 90_000);
});
