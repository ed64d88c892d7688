import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openStore, rmDir, tempDir } from './storage-helpers.ts';

let dir: string;
beforeEach(() => {
  dir = tempDir();
});
afterEach(() => rmDir(dir));

describe('data directory', () => {
  it('a second store on the same directory refuses to start while the first holds it', async () => {
    const a = await openStore(dir);
    await expect(openStore(dir)).rejects.toMatchObject({ code: 'STORAGE_UNAVAILABLE', details: { lockPid: process.pid } });
    await a.close();
    const b = await openStore(dir);
    await b.close();
  });

  it('a lock left by a dead process is taken over', async () => {
    const child = spawn(process.execPath, ['-e', '0']);
    const pid = child.pid!;
    await new Promise((r) => child.on('exit', r));
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, '@format'), '{"format":1}\n');
    fs.writeFileSync(path.join(dir, '@lock'), `${pid}\n`);
    const s = await openStore(dir);
    expect(fs.readFileSync(path.join(dir, '@lock'), 'utf8').trim()).toBe(String(process.pid));
    await s.close();
    expect(fs.existsSync(path.join(dir, '@lock'))).toBe(false);
  });

  it('refuses an unknown format version with a clear message', async () => {
    fs.writeFileSync(path.join(dir, '@format'), '{"format":7}\n');
    await expect(openStore(dir)).rejects.toThrow(/format version 7; this hub only understands version 1/);
    expect(fs.existsSync(path.join(dir, '@lock'))).toBe(false);
  });

  it('refuses a non-empty directory that is not a data directory', async () => {
    fs.writeFileSync(path.join(dir, 'notes.txt'), 'hello');
    await expect(openStore(dir)).rejects.toMatchObject({ code: 'BAD_CONFIG' });
  });
});
