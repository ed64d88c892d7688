import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { SETTINGS, envNameOf, flagNameOf } from '../../server/config.ts';
import { AUTH_SETTINGS } from '../../server/auth/auth-settings.ts';

/** The README's configuration table must list exactly the settings the hub reads, with their real names. */
function readmeRows(): Map<string, { flag: string; env: string }> {
  const text = fs.readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
  const section = text.slice(text.indexOf('## Configuration'), text.indexOf('## Documentation'));
  const rows = new Map<string, { flag: string; env: string }>();
  for (const line of section.split('\n')) {
    const m = /^\| `([^`]+)` \| `([^`]+)` \| `([^`]+)` \|/.exec(line);
    if (m) rows.set(m[1], { flag: m[2], env: m[3] });
  }
  return rows;
}

describe('README configuration table', () => {
  it('lists every hub setting with its flag and environment variable', () => {
    const rows = readmeRows();
    const visible = Object.entries(SETTINGS).filter(([, spec]) => !('hidden' in spec && spec.hidden));
    for (const [key] of visible) {
      expect(rows.get(key), key).toEqual({ flag: `--${flagNameOf(key)}`, env: envNameOf(key) });
    }
    for (const s of AUTH_SETTINGS) expect(rows.get(s.key), s.key).toEqual({ flag: s.flag, env: s.env });
  });

  it('lists nothing the hub does not read', () => {
    const known = new Set([...Object.keys(SETTINGS), ...AUTH_SETTINGS.map((s) => s.key)]);
    for (const key of readmeRows().keys()) expect(known.has(key), key).toBe(true);
  });
});
