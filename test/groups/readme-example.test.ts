/**
 * The README's consumer-group example, run as it is written (only the import
 * path made absolute) against a real hub: it bills every order once across
 * two members and ends with lag 0.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { tempDir, type Hub } from '../../harness/hub.ts';
import { startGroupHub } from './support.ts';
import { readmeBlocks, ROOT, withLocalImports } from '../helpers/readme.ts';

let hub: Hub;
let dir: string;

beforeAll(async () => {
  hub = await startGroupHub();
  dir = tempDir('tributary-readme-');
});
afterAll(async () => {
  await hub?.stop();
  hub?.cleanup();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

const example = (): string => withLocalImports(readmeBlocks('Consumer groups', 'ts')[0]);

it('the README consumer-group example runs: every order billed once, lag 0 after the members leave', async () => {
  const file = path.join(dir, 'example.mts');
  fs.writeFileSync(file, example());
  const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', file], { cwd: ROOT, env: { ...process.env, HUB_WS: hub.wsUrl }, timeout: 60_000 });
  expect(stdout).toMatch(/billed 40 orders; assignment \[ \[ \d, \d \], \[ \d, \d \] \]/);
  expect(stdout).toMatch(/^lag 0$/m);
  expect(stdout).toMatch(/billing-1 assigned/);
});
