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
