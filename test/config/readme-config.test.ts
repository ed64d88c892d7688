import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { README, readmeTable, settingsTable } from '../../scripts/settings-table.ts';

describe('README configuration table', () => {
  it('is the settings table: every setting the hub reads, with its real names and default (regenerate with `npx tsx scripts/settings-table.ts`)', () => {
    expect(readmeTable(fs.readFileSync(README, 'utf8')).lines).toEqual(settingsTable());
  });
});
