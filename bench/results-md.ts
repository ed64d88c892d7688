/**
 * Renders a `npm run bench -- --json FILE` result as the Markdown tables of
 * bench/README.md (one per scenario, the hub's ratio to each other row).
 *   node --import tsx bench/results-md.ts FILE.json
 */
import fs from 'node:fs';
import { ratios, type ResultRow, type RunInfo, type Skipped } from './lib/report.ts';

interface ResultFile {
  results: ResultRow[];
  skipped: Skipped[];
  run: RunInfo;
}

const rate = (n: number): string => (n >= 1e6 ? `${(n / 1e6).toFixed(2)} M` : n >= 1e3 ? `${(n / 1e3).toFixed(1)} k` : n.toFixed(0));
const ms = (n: number | undefined): string => (n === undefined ? '' : n < 10 ? n.toFixed(2) : n.toFixed(1));
const kib = (n: number | undefined): string => (n === undefined ? '' : `${(n / 1024).toFixed(1)} KiB`);
const mib = (n: number | undefined): string => (n === undefined ? '' : `${(n / 1048576).toFixed(0)} MiB`);

export function toMarkdown(f: ResultFile): string {
  const rs = ratios(f.results);
  const out: string[] = [];
  const scenarios = [...new Set(f.results.map((r) => r.scenario))];
  for (const sc of scenarios) {
    const rows = f.results.filter((r) => r.scenario === sc);
    const latency = rows.some((r) => r.p99Ms !== undefined);
    const conns = sc === 'connections';
    const head = ['system', conns ? 'connections opened/s' : 'events/s', ...(conns ? ['RSS per connection', 'RSS'] : ['MB/s']), ...(latency ? ['p50 ms', 'p99 ms', 'p99.9 ms'] : []), 'hub vs this'];
    out.push(`#### ${sc}`, '', `| ${head.join(' | ')} |`, `| ${head.map((_, i) => (i === 0 ? '---' : '---:')).join(' | ')} |`);
    for (const r of rows) {
      const ratio = rs.find((x) => x.scenario === sc && x.against === r.system);
      const cells = [
        r.system === 'hub' ? '**hub**' : r.system,
        rate(r.eventsPerSec),
        ...(conns ? [kib(r.rssPerConnBytes), mib(r.rssBytes)] : [r.mbPerSec === undefined ? '' : r.mbPerSec.toFixed(1)]),
        ...(latency ? [ms(r.p50Ms), ms(r.p99Ms), ms(r.p999Ms)] : []),
        ratio ? `${ratio.hubAdvantage.toFixed(2)}×` : '',
      ];
      out.push(`| ${cells.join(' | ')} |`);
    }
    const skipped = f.skipped.filter((s) => s.scenario === sc);
    if (skipped.length) out.push('', `Not run: ${skipped.map((s) => `${s.system} (${s.reason})`).join('; ')}.`);
    out.push('');
  }
  return out.join('\n');
}

function main(): void {
  const file = process.argv[2];
  if (!file) {
    console.error('usage: results-md.ts FILE.json');
    process.exit(2);
  }
  const f = JSON.parse(fs.readFileSync(file, 'utf8')) as ResultFile;
  const m = f.run.machine;
  console.log(
    `Run of ${f.run.date}${f.run.quick ? ' (--quick)' : ''}: ${m.nproc} CPUs (${m.cpu}), ${(m.memTotalBytes / 2 ** 30).toFixed(0)} GiB, Node ${m.node}, Linux ${m.kernel}; load average ${f.run.loadAvg.atStart.join('/')} at start.\n`,
  );
  console.log(toMarkdown(f));
}

if (import.meta.url === `file://${process.argv[1]}`) main();
