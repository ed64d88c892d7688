/**
 * The README's command-line examples, run as written (with `tributary` on
 * the PATH and the URL pointed at a test hub): they must work and print
 * what their comments say.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { useHub } from '../../harness/hub-fixture.ts';
import { BIN } from '../cli/cli-run.ts';
import { readmeBlocks } from '../helpers/readme.ts';

const shBlocks = (section: string): string[] => readmeBlocks(section, 'sh');

const hub = useHub();
let shimDir: string;

beforeAll(async () => {
  shimDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tributary-bin-'));
  fs.writeFileSync(path.join(shimDir, 'tributary'), `#!/bin/sh\nexec "${process.execPath}" "${BIN}" "$@"\n`, { mode: 0o755 });
});

afterAll(async () => {
  fs.rmSync(shimDir, { recursive: true, force: true });
});

async function runScript(script: string): Promise<string> {
  const body = script.replaceAll('http://127.0.0.1:8080', hub.url);
  const { stdout } = await promisify(execFile)('bash', ['-euo', 'pipefail', '-c', body], {
    env: { ...process.env, PATH: `${shimDir}:${process.env.PATH}`, TRIBUTARY_URL: hub.url },
    timeout: 240_000,
    maxBuffer: 64 * 1024 * 1024,
  });
  return stdout;
}

describe('README: command line', () => {
  it('the topic, produce and consume example runs and prints what it says', async () => {
    const [example] = shBlocks('Command line');
    const out = await runScript(example);
    expect(out).toMatch(/^created topic readings with 3 partitions\n/);
    expect(out).toMatch(/\nreadings\s+3\s+10002\s/);
    expect(out).toContain('\n10002\n');
    expect(out).toContain('\n21.5\n22\n');
    expect(out).toMatch(/\{"topic":"readings","partition":1,"offset":5,/);
    expect(JSON.parse(out.slice(out.lastIndexOf('\n{\n') + 1))).toMatchObject({ name: 'readings', partitions: 3 });
  }, 300_000);

  it('the consumer groups example runs', async () => {
    const [, groups] = shBlocks('Command line');
    const out = await runScript(groups);
    expect(out).toMatch(/^GROUP\s+STATE\s+GENERATION\s+MEMBERS\s+TOPICS\s+LAG\nbilling\s+empty\s/);
    expect(out).toMatch(/\n0\n$/);
  }, 300_000);
});
