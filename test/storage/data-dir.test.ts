import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { openStore, useStoreFixture } from '../helpers/store.ts';

const fx = useStoreFixture();

describe('data directory', () => {
  it('a second store on the same directory refuses to start while the first holds it', async () => {
    const a = await openStore(fx.dir);
    await expect(openStore(fx.dir)).rejects.toMatchObject({ code: 'STORAGE_UNAVAILABLE', details: { lockPid: process.pid } });
    await a.close();
    const b = await openStore(fx.dir);
    await b.close();
  });

  it('a lock left by a dead process is taken over', async () => {
    const child = spawn(process.execPath, ['-e', '0']);
    const pid = child.pid!;
    await new Promise((r) => child.on('exit', r));
    fs.mkdirSync(fx.dir, { recursive: true });
    fs.writeFileSync(path.join(fx.dir, '@format'), '{"format":1}\n');
    fs.writeFileSync(path.join(fx.dir, '@lock'), `${pid}\n`);
    const s = await openStore(fx.dir);
    expect(fs.readFileSync(path.join(fx.dir, '@lock'), 'utf8').split('\n')[0]).toBe(String(process.pid));
    await s.close();
    expect(fs.existsSync(path.join(fx.dir, '@lock'))).toBe(false);
  });

  it('refuses an unknown format version with a clear message', async () => {
    fs.writeFileSync(path.join(fx.dir, '@format'), '{"format":7}\n');
    await expect(openStore(fx.dir)).rejects.toThrow(/format version 7; this hub only understands version 1/);
    expect(fs.existsSync(path.join(fx.dir, '@lock'))).toBe(false);
  });

  it('refuses a non-empty directory that is not a data directory', async () => {
    fs.writeFileSync(path.join(fx.dir, 'notes.txt'), 'hello');
    await expect(openStore(fx.dir)).rejects.toMatchObject({ code: 'BAD_CONFIG' });
  });
});
