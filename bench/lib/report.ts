/**
 * Result rows, the ratios of the hub against every other system of the same
 * scenario, the printed table and the JSON file.
 */
import fs from 'node:fs';

export interface ResultRow {
  scenario: string;
  system: string;
  eventsPerSec: number;
  /** 10^6 bytes of event values per second. */
  mbPerSec?: number;
  p50Ms?: number;
  p99Ms?: number;
  p999Ms?: number;
  /** Server RSS at the end of the run (connections: with every connection open). */
  rssBytes?: number;
  /** connections: (RSS with the connections − RSS before) / connections. */
  rssPerConnBytes?: number;
  notes?: string;
}

export interface Skipped {
  scenario: string;
  system: string;
  reason: string;
}

export interface Ratio {
  scenario: string;
  against: string;
  /** What is compared: throughput (hub ÷ other), p99 (other ÷ hub), or RSS per connection (other ÷ hub). */
  metric: 'eventsPerSec' | 'p99Ms' | 'rssPerConnBytes';
  /** > 1 means the hub is better on this metric. */
  hubAdvantage: number;
}

/** Scenarios judged by latency (lower is better) rather than by rate. */
const LATENCY_SCENARIOS = new Set(['latency', 'fanout']);

export function ratios(rows: ResultRow[]): Ratio[] {
  const out: Ratio[] = [];
  for (const hub of rows.filter((r) => r.system === 'hub')) {
    for (const other of rows.filter((r) => r.scenario === hub.scenario && r.system !== 'hub')) {
      let r: Ratio | null = null;
      if (hub.scenario === 'connections') {
        if (hub.rssPerConnBytes && other.rssPerConnBytes) r = { scenario: hub.scenario, against: other.system, metric: 'rssPerConnBytes', hubAdvantage: other.rssPerConnBytes / hub.rssPerConnBytes };
      } else if (LATENCY_SCENARIOS.has(hub.scenario.split('-')[0])) {
        if (hub.p99Ms && other.p99Ms) r = { scenario: hub.scenario, against: other.system, metric: 'p99Ms', hubAdvantage: other.p99Ms / hub.p99Ms };
      } else if (other.eventsPerSec > 0) {
        r = { scenario: hub.scenario, against: other.system, metric: 'eventsPerSec', hubAdvantage: hub.eventsPerSec / other.eventsPerSec };
      }
      if (r) out.push(r);
    }
  }
  return out;
}

const fmtRate = (n: number): string => (n >= 1e6 ? `${(n / 1e6).toFixed(2)}M` : n >= 1e3 ? `${(n / 1e3).toFixed(1)}k` : n.toFixed(0));
const fmtMs = (n: number | undefined): string => (n === undefined ? '' : n < 10 ? n.toFixed(2) : n.toFixed(1));
const fmtBytes = (n: number | undefined): string =>
  n === undefined ? '' : n >= 1 << 30 ? `${(n / (1 << 30)).toFixed(2)} GiB` : n >= 1 << 20 ? `${(n / (1 << 20)).toFixed(1)} MiB` : n >= 1024 ? `${(n / 1024).toFixed(1)} KiB` : `${n.toFixed(0)} B`;

function pad(cells: string[][]): string {
  const widths = cells[0].map((_, i) => Math.max(...cells.map((row) => row[i].length)));
  return cells.map((row) => row.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ')).join('\n');
}

/** A plain-text table per scenario with the hub's ratio against each row, then the notes. */
export function formatTable(rows: ResultRow[], skipped: Skipped[]): string {
  const rs = ratios(rows);
  const scenarios = [...new Set([...rows.map((r) => r.scenario), ...skipped.map((s) => s.scenario)])];
  const out: string[] = [];
  for (const sc of scenarios) {
    const header = ['system', 'events/s', 'MB/s', 'p50 ms', 'p99 ms', 'p99.9 ms', 'RSS', 'RSS/conn', 'hub vs this'];
    const cells = [header];
    const notes: string[] = [];
    for (const r of rows.filter((x) => x.scenario === sc)) {
      const ratio = rs.find((x) => x.scenario === sc && x.against === r.system);
      cells.push([
        r.system,
        fmtRate(r.eventsPerSec),
        r.mbPerSec === undefined ? '' : r.mbPerSec.toFixed(1),
        fmtMs(r.p50Ms),
        fmtMs(r.p99Ms),
        fmtMs(r.p999Ms),
        fmtBytes(r.rssBytes),
        fmtBytes(r.rssPerConnBytes),
        ratio ? `${ratio.hubAdvantage.toFixed(2)}×${ratio.metric === 'eventsPerSec' ? '' : ratio.metric === 'p99Ms' ? ' (p99)' : ' (RSS)'}` : '',
      ]);
      if (r.notes) notes.push(`  ${r.system}: ${r.notes}`);
    }
    for (const s of skipped.filter((x) => x.scenario === sc)) notes.push(`  ${s.system}: not run (${s.reason})`);
    out.push(`== ${sc}`, pad(cells), ...notes, '');
  }
  out.push('hub vs this: events/s hub ÷ this; (p99) this p99 ÷ hub p99; (RSS) this RSS/conn ÷ hub RSS/conn. Above 1 the hub is better.');
  return out.join('\n');
}

export interface RunInfo {
  date: string;
  quick: boolean;
  /** 1/5/15-minute load averages: other work on the machine skews every figure. */
  loadAvg: { atStart: number[]; atEnd: number[] };
  machine: { nproc: number; cpu: string; memTotalBytes: number; node: string; kernel: string };
}

export function writeJson(file: string, rows: ResultRow[], skipped: Skipped[], info: RunInfo): void {
  fs.writeFileSync(file, JSON.stringify({ results: rows, skipped, ratios: ratios(rows), run: info }, null, 2) + '\n');
}
