/** Polls `predicate` until it holds, failing after `deadlineMs` with `what` and the last value seen. */
export async function waitFor<T>(what: string, probe: () => T | Promise<T>, predicate: (v: T) => boolean, deadlineMs = 30_000, everyMs = 50): Promise<T> {
  const end = Date.now() + deadlineMs;
  let last: T | undefined;
  let lastError: unknown;
  for (;;) {
    try {
      last = await probe();
      if (predicate(last)) return last;
    } catch (e) {
      lastError = e;
    }
    if (Date.now() > end) throw new Error(`timed out after ${deadlineMs} ms waiting for ${what}; last: ${JSON.stringify(last)}${lastError ? ` (error: ${String(lastError)})` : ''}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
