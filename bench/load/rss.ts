import fs from 'node:fs';
import type { Target } from './job.ts';

/** The server's resident set size in bytes, read from /proc (same machine), or undefined. */
export function readServerRss(t: Target): number | undefined {
  if (!t.serverPid) return undefined;
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${t.serverPid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

/** Linux reports utime/stime in /proc in USER_HZ ticks, 100 per second on every architecture Node runs on. */
const USER_HZ = 100;

/**
 * CPU time, the kernel's part of it, and run-queue wait of every thread of a
 * process, in ms (/proc/PID/task/TID/schedstat: ns on CPU, ns waiting to run;
 * /proc/PID/task/TID/stat: stime in ticks, so 10 ms resolution).
 */
export interface SchedStat {
  cpuMs: number;
  kernelMs: number;
  waitMs: number;
}

export function readSchedStat(pid: number | undefined): SchedStat | undefined {
  if (!pid) return undefined;
  try {
    let cpu = 0;
    let wait = 0;
    let kernelTicks = 0;
    for (const tid of fs.readdirSync(`/proc/${pid}/task`)) {
      const [run, delay] = fs.readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').trim().split(/\s+/).map(Number);
      cpu += run;
      wait += delay;
      // The name field may hold spaces and parentheses: the fields after the last ')' start at state (field 3); stime is field 15.
      const stat = fs.readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      kernelTicks += Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[12]) || 0;
    }
    return { cpuMs: cpu / 1e6, kernelMs: (kernelTicks * 1000) / USER_HZ, waitMs: wait / 1e6 };
  } catch {
    return undefined;
  }
}
