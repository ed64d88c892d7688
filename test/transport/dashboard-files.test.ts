/** The hub's copy of the dashboard build: the page and its hashed assets, or a clear reason when the build is missing. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { loadDashboardFiles } from '../../server/transport/dashboard-files.ts';

let dir: string;
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('dashboard files', () => {
  it('without a build, says which file is missing and how to build it', () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dash-'));
    const files = loadDashboardFiles(dir);
    expect(files.index).toBeNull();
    expect(files.missing).toBe(`the dashboard is not built: ${path.join(dir, 'index.html')} is missing (run \`npm run build\`)`);
  });

  it('holds the page (revalidated) and the hashed assets (cached for good) by URL path', () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dash-'));
    fs.mkdirSync(path.join(dir, 'assets'));
    fs.writeFileSync(path.join(dir, 'index.html'), '<!doctype html>');
    fs.writeFileSync(path.join(dir, 'assets', 'index-abc.js'), 'export {}');
    fs.writeFileSync(path.join(dir, 'assets', 'index-abc.css'), 'body{}');
    const files = loadDashboardFiles(dir);
    expect(files.index).toMatchObject({ contentType: 'text/html; charset=utf-8', cacheControl: 'no-cache' });
    expect([...files.assets.keys()].sort()).toEqual(['/assets/index-abc.css', '/assets/index-abc.js']);
    expect(files.assets.get('/assets/index-abc.js')).toMatchObject({ contentType: 'text/javascript; charset=utf-8', cacheControl: 'public, max-age=31536000, immutable' });
  });
});
