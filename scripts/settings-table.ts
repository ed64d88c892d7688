/**
 * The README's configuration table, generated from the settings table
 * (server/settings.ts). `npx tsx scripts/settings-table.ts` rewrites the
 * table in README.md; test/config/readme-config.test.ts fails when the two differ.
 */
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { SETTINGS, envOf, flagOf, type SettingSpec } from '../server/settings.ts';

export const README = fileURLToPath(new URL('../README.md', import.meta.url));
const HEADER = ['| config key | flag | environment | default | meaning |', '| --- | --- | --- | --- | --- |'];

function defaultCell(spec: SettingSpec): string {
  if (spec.defaultDoc !== undefined) return spec.defaultDoc;
  if (spec.default === undefined) return '—';
  return Array.isArray(spec.default) ? spec.default.join(', ') : String(spec.default);
}

/** One markdown row per visible setting, in table order, under the header. */
export function settingsTable(): string[] {
  const rows = (Object.entries(SETTINGS) as Array<[string, SettingSpec]>)
    .filter(([, spec]) => !spec.hidden)
    .map(([key, spec]) => {
      const meaning = spec.kind === 'enum' && spec.defaultDoc === undefined ? `${spec.doc} (${spec.values!.join(' / ')})` : spec.doc;
      return `| \`${key}\` | \`${flagOf(key)}\` | \`${envOf(key)}\` | ${defaultCell(spec)} | ${meaning} |`;
    });
  return [...HEADER, ...rows];
}

/** The lines of the table in README.md: from its header to the first line that is not a row. */
export function readmeTable(text: string): { start: number; lines: string[] } {
  const all = text.split('\n');
  const start = all.indexOf(HEADER[0]);
  if (start < 0) throw new Error('README.md has no configuration table header');
  let end = start;
  while (end < all.length && all[end].startsWith('|')) end++;
  return { start, lines: all.slice(start, end) };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const text = fs.readFileSync(README, 'utf8');
  const { start, lines } = readmeTable(text);
  const all = text.split('\n');
  all.splice(start, lines.length, ...settingsTable());
  fs.writeFileSync(README, all.join('\n'));
}
