/**
 * CPU time of a process or a thread from /proc (Linux): the figure per event
 * that does not depend on what else shares the machine.
 */
import fs from 'node:fs';

/** Clock ticks per second of /proc's utime and stime (USER_HZ, 100 on Linux). */
const USER_HZ = 100;

/**
 * User + system CPU µs of `/proc/<pid>/stat`, `/proc/thread-self/stat` or
 * another stat file (`part` 'system': the kernel's share only); undefined
 * where there is none (not Linux, process gone).
 */
export function statCpuUs(statFile: string, part: 'all' | 'system' = 'all'): number | undefined {
  try {
    const stat = fs.readFileSync(statFile, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (((part === 'all' ? Number(f[11]) : 0) + Number(f[12])) / USER_HZ) * 1e6; // fields 14 and 15 of stat: utime, stime
  } catch {
    return undefined;
  }
}

/** This thread's CPU µs (process.cpuUsage() counts every thread of the process: V8's GC and compiler threads too); NaN off Linux. */
export const threadCpuUs = (): number => statCpuUs('/proc/thread-self/stat') ?? NaN;
