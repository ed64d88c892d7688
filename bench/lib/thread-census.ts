/**
 * A CPU census of a process tree (Linux /proc): every thread of this process
 * and of its descendants (the hub, each Chromium process), read before and
 * after a timed window, so a bench can say which process and thread holds
 * the CPU, and whether the machine's cores were saturated while it ran.
 * Minor page faults per thread too: on this host a fault (fresh or returned
 * memory touched again) costs microseconds, and Chromium's renderer takes
 * one for about every 4 KiB it receives or decodes (bench/README.md, h13r4).
 */
import fs from 'node:fs';
import { statCpuUs } from './proc-cpu.ts';

interface ThreadSample {
  proc: string;
  thread: string;
  us: number;
  /** Of `us`, in the kernel (stime): sends and receives show here. */
  sysUs: number;
  /** Minor page faults (minflt): fresh or returned memory touched again. */
  faults: number;
}

export interface CensusSnapshot {
  threads: Map<string, ThreadSample>;
  /** Machine-wide busy and total jiffies from /proc/stat (every process, not only ours). */
  machineBusy: number;
  machineTotal: number;
  atMs: number;
}

export interface CensusRow {
  proc: string;
  thread: string;
  us: number;
  sysUs: number;
  faults: number;
}

/** Minor page faults of a thread's stat file (field 10, minflt). */
function minorFaults(statFile: string): number {
  const stat = read(statFile);
  return stat ? Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[7]) : 0;
}

const read = (file: string): string => {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return '';
  }
};

/** What a process is, by its command line: node's script, or Chromium's --type (and utility sub-type). */
function procName(pid: number): string {
  const argv = read(`/proc/${pid}/cmdline`).split(/[\0 ]/); // Chromium rewrites its argv into one space-separated string
  const type = argv.find((a) => a.startsWith('--type='))?.slice(7);
  const sub = argv.find((a) => a.startsWith('--utility-sub-type='))?.slice(19);
  const exe = argv[0]?.split('/').pop() ?? '?';
  if (type) return `chromium ${sub ? sub.replace(/\.mojom\./, ' ') : type}`;
  if (exe.includes('chrom') || exe.includes('headless_shell')) return 'chromium browser';
  const script = argv.find((a) => /\.(ts|mjs|js)$/.test(a) && !a.includes('node_modules'));
  return `${exe} ${script ? script.split('/').slice(-2).join('/') : ''} ${argv.includes('serve') ? '(hub)' : ''}`.trim();
}

/** This process and every descendant (by ppid in /proc/<pid>/stat). */
function processTree(root: number): number[] {
  const parent = new Map<number, number>();
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    const stat = read(`/proc/${d}/stat`);
    if (stat) parent.set(Number(d), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
  }
  const tree = [root];
  for (let i = 0; i < tree.length; i++) for (const [pid, pp] of parent) if (pp === tree[i]) tree.push(pid);
  return tree;
}

export function censusSnapshot(root = process.pid): CensusSnapshot {
  const threads = new Map<string, ThreadSample>();
  for (const pid of processTree(root)) {
    const proc = `${procName(pid)} [${pid}]`;
    let tids: string[] = [];
    try {
      tids = fs.readdirSync(`/proc/${pid}/task`);
    } catch {
      continue;
    }
    for (const tid of tids) {
      const us = statCpuUs(`/proc/${pid}/task/${tid}/stat`);
      const sysUs = statCpuUs(`/proc/${pid}/task/${tid}/stat`, 'system');
      const faults = minorFaults(`/proc/${pid}/task/${tid}/stat`);
      if (us !== undefined) threads.set(`${pid}/${tid}`, { proc, thread: read(`/proc/${pid}/task/${tid}/comm`).trim(), us, sysUs: sysUs ?? 0, faults });
    }
  }
  const cpu = read('/proc/stat').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const total = cpu.slice(0, 8).reduce((a, b) => a + b, 0);
  const idle = (cpu[3] ?? 0) + (cpu[4] ?? 0);
  return { threads, machineBusy: total - idle, machineTotal: total, atMs: performance.now() };
}

/**
 * The CPU each thread used between two snapshots, most first, threads of one
 * name in one process summed (a thread pool's workers are one row).
 */
export function censusDiff(a: CensusSnapshot, b: CensusSnapshot): { rows: CensusRow[]; machineBusyShare: number; wallMs: number } {
  const sums = new Map<string, CensusRow>();
  for (const [k, s] of b.threads) {
    const us = s.us - (a.threads.get(k)?.us ?? 0);
    if (us <= 0) continue;
    const key = `${s.proc}\0${s.thread}`;
    const row = sums.get(key) ?? { proc: s.proc, thread: s.thread, us: 0, sysUs: 0, faults: 0 };
    row.us += us;
    row.sysUs += s.sysUs - (a.threads.get(k)?.sysUs ?? 0);
    row.faults += s.faults - (a.threads.get(k)?.faults ?? 0);
    sums.set(key, row);
  }
  const rows = [...sums.values()].sort((x, y) => y.us - x.us);
  return { rows, machineBusyShare: (b.machineBusy - a.machineBusy) / Math.max(1, b.machineTotal - a.machineTotal), wallMs: b.atMs - a.atMs };
}

/** The census as text: µs per event per thread, per process, and the total. */
export function formatCensus(d: ReturnType<typeof censusDiff>, events: number): string {
  const per = (us: number) => (us / events).toFixed(2).padStart(6);
  const byProc = new Map<string, number>();
  for (const r of d.rows) byProc.set(r.proc, (byProc.get(r.proc) ?? 0) + r.us);
  const total = d.rows.reduce((s, r) => s + r.us, 0);
  const lines = [
    `census over ${d.wallMs.toFixed(0)} ms, ${events} events: ours ${per(total)} µs/event = ${((total / 1000 / d.wallMs) * 100).toFixed(0)}% of one core; machine (all processes) ${(d.machineBusyShare * 100).toFixed(0)}% busy`,
    ...[...byProc].sort((x, y) => y[1] - x[1]).map(([p, us]) => `  ${per(us)} µs/event ${((us / 1000 / d.wallMs) * 100).toFixed(0).padStart(3)}% core  ${p}`),
    '  threads:',
    ...d.rows
      .filter((r) => r.us / events >= 0.02)
      .map(
        (r) =>
          `  ${per(r.us)} µs/event ${((r.us / 1000 / d.wallMs) * 100).toFixed(0).padStart(3)}% core  (kernel ${per(r.sysUs).trim()}; ${(r.faults / events).toFixed(3)} faults/event)  ${r.proc} :: ${r.thread}`,
      ),
  ];
  return lines.join('\n');
}
