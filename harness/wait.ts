/**
 * Waiting for something to happen, with a deadline instead of a fixed sleep:
 * a loaded 2-core machine must only make a test slower, never wrong. A fixed
 * sleep stays only where a test proves that something does *not* happen,
 * with the reason beside it.
 */
import fs from 'node:fs';

const POLL_MS = 20;

/**
 * Resolves once `predicate` (sync or async) returns true; rejects after
 * `deadlineMs` naming `what`. Exceptions from the predicate count as false
 * until the deadline, then the last one is the cause.
 */
export async function waitFor(predicate: () => boolean | Promise<boolean>, deadlineMs = 10_000, what = 'condition'): Promise<void> {
  const until = Date.now() + deadlineMs;
  let last: unknown;
  for (;;) {
    try {
      if (await predicate()) return;
      last = undefined;
    } catch (err) {
      last = err;
    }
    if (Date.now() >= until) throw new Error(`timed out after ${deadlineMs} ms waiting for ${what}`, { cause: last });
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}

/** Resident set size of a process, from /proc (Linux). */
export function rssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : 0;
}

/** Open file descriptors of a process, from /proc (Linux). */
export function openFds(pid: number): number {
  return fs.readdirSync(`/proc/${pid}/fd`).length;
}
