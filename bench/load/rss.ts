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

/** CPU time and run-queue wait of every thread of a process, in ms (/proc/PID/task/TID/schedstat: ns on CPU, ns waiting to run, timeslices). */
export function readSchedStat(pid: number | undefined): { cpuMs: number; waitMs: number } | undefined {
  if (!pid) return undefined;
  try {
    let cpu = 0;
    let wait = 0;
    for (const tid of fs.readdirSync(`/proc/${pid}/task`)) {
      const [run, delay] = fs.readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').trim().split(/\s+/).map(Number);
      cpu += run;
      wait += delay;
    }
    return { cpuMs: cpu / 1e6, waitMs: wait / 1e6 };
  } catch {
    return undefined;
  }
}
