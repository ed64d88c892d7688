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
export async function waitFor(predicate: () => boolean | Promise<boolean>, deadlineMs = 10_000, what = 'condition', everyMs = POLL_MS): Promise<void> {
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
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/**
 * The same with a value to wait on: polls `probe` until `until(value)` holds
 * and returns that value; the deadline's error names `what` and shows the
 * last value seen (and the probe's last error), which is usually the whole
 * diagnosis.
 */
export async function waitForValue<T>(what: string, probe: () => T | Promise<T>, until: (v: T) => boolean, deadlineMs = 30_000, everyMs = POLL_MS): Promise<T> {
  let last: T | undefined;
  let lastError: unknown;
  try {
    await waitFor(
      async () => {
        try {
          last = await probe();
          lastError = undefined;
        } catch (err) {
          lastError = err;
          return false;
        }
        return until(last);
      },
      deadlineMs,
      what,
      everyMs,
    );
  } catch {
    throw new Error(`timed out after ${deadlineMs} ms waiting for ${what}; last: ${JSON.stringify(last)}${lastError ? ` (error: ${String(lastError)})` : ''}`, { cause: lastError });
  }
  return last as T;
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
