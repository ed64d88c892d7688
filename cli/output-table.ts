/**
 * Plain text tables for list and describe commands (`--json` prints the
 * hub's answer instead, for scripts). No colours or box drawing: the output
 * reads the same in a terminal, a log file and a pipe.
 */
export { formatBytes } from '../web-client/format.ts';
export function formatTable(header: string[], rows: Array<Array<string | number>>): string {
  const cells = [header, ...rows.map((r) => r.map(String))];
  const widths = header.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  return cells.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]))).join('  ')).join('\n') + '\n';
}

export function printJson(doc: unknown): void {
  process.stdout.write(`${JSON.stringify(doc, null, 2)}\n`);
}
