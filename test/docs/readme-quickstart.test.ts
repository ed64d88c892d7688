/**
 * The README's quick start, run as a newcomer would: its curl commands
 * against a real hub, and the record read back from the partition the
 * produce answer named.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { useHub } from '../../harness/hub-fixture.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const hub = useHub();

/** The shell block of the quick start that follows "Then:", as commands (continuation lines joined). */
function quickStartCommands(): string[] {
  const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  const block = /`npm start -- [^\n]*Then:\n\n```sh\n([\s\S]*?)```/.exec(readme);
  if (!block) throw new Error('README quick start block not found');
  return block[1]
    .replace(/\\\n\s*/g, '')
    .split('\n')
    .filter((l) => l.startsWith('curl '));
}

describe('README quick start', () => {
  it('reads back the record from the partition the produce answer named', () => {
    const commands = quickStartCommands();
    expect(commands.length).toBe(4);
    const outputs = commands.map((c) => execFileSync('bash', ['-c', c.replaceAll('localhost:8080', `127.0.0.1:${hub.port}`)], { encoding: 'utf8' }));
    const produced = JSON.parse(outputs[2]) as { offsets: Array<{ partition: number; offset: number }> };
    const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
    expect(readme).toContain(`# → ${JSON.stringify(produced)}`);
    expect(commands[3]).toContain(`/partitions/${produced.offsets[0].partition}/records`);
    const read = JSON.parse(outputs[3]) as { records: Array<{ key: string; value: unknown }> };
    expect(read.records).toEqual([expect.objectContaining({ key: 'order-1', value: { total: 12.5 } })]);
  });
});
