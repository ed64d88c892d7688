/**
 * Pieces every load driver shares: event payloads that carry their send time,
 * a latency recorder with a bounded sample, a pacer for steady rates, and a
 * bounded wait.
 */
import type { Percentiles } from './job.ts';

/** Clock shared by producer and consumers of one load process (ms, sub-ms resolution). */
export const now = (): number => performance.now();

/** A value of `bytes` bytes; the first 8 hold the send time when stamped. */
export function makeValue(bytes: number, fill = 0x61): Buffer {
  const b = Buffer.alloc(Math.max(bytes, 8), fill);
  return b;
}

export function stampValue(b: Uint8Array, t = now()): void {
  new DataView(b.buffer, b.byteOffset, 8).setFloat64(0, t, true);
}

export function readStamp(b: Uint8Array, pos = 0): number {
  return new DataView(b.buffer, b.byteOffset + pos, 8).getFloat64(0, true);
}

const MAX_SAMPLES = 2_000_000;

/** Latencies in ms; keeps at most MAX_SAMPLES (reservoir beyond that keeps the sample fair). */
export class LatencyRecorder {
  private samples = new Float64Array(1024);
  private n = 0;
  private seen = 0;

  record(ms: number): void {
    this.seen++;
    if (this.n < MAX_SAMPLES) {
      if (this.n === this.samples.length) {
        const next = new Float64Array(Math.min(this.samples.length * 2, MAX_SAMPLES));
        next.set(this.samples);
        this.samples = next;
      }
      this.samples[this.n++] = ms;
      return;
    }
    const j = Math.floor(Math.random() * this.seen);
    if (j < MAX_SAMPLES) this.samples[j] = ms;
  }

  /** Records the same latency `times` times (a batch whose events were all sent at once). */
  recordMany(ms: number, times: number): void {
    for (let i = 0; i < times; i++) this.record(ms);
  }

  get count(): number {
    return this.seen;
  }

  percentiles(): Percentiles | undefined {
    if (this.n === 0) return undefined;
    const s = this.samples.slice(0, this.n).sort();
    const at = (q: number): number => s[Math.min(s.length - 1, Math.floor(q * s.length))];
    return { count: this.seen, p50Ms: at(0.5), p99Ms: at(0.99), p999Ms: at(0.999) };
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * Calls `send(n)` with the events due so that `rate` events/s go out steadily
 * for `durationMs`; ticks about every `tickMs`. Resolves with the number sent.
 */
export async function pace(rate: number, durationMs: number, tickMs: number, send: (n: number) => void): Promise<number> {
  const start = now();
  let sent = 0;
  const total = Math.floor((rate * durationMs) / 1000);
  while (sent < total) {
    const elapsed = now() - start;
    if (elapsed > durationMs + 5_000) break; // the event loop fell far behind: stop, the numbers show it
    const due = Math.min(total, Math.floor((rate * elapsed) / 1000)) - sent;
    if (due > 0) {
      send(due);
      sent += due;
    }
    await sleep(tickMs);
  }
  return sent;
}

/** Resolves when `done()` turns true or `timeoutMs` passes (then resolves false). */
export async function waitUntil(done: () => boolean, timeoutMs: number, pollMs = 5): Promise<boolean> {
  const deadline = now() + timeoutMs;
  while (!done()) {
    if (now() > deadline) return false;
    await sleep(pollMs);
  }
  return true;
}

/** Runs `open` `count` times with at most `concurrency` at once. */
export async function openMany<T>(count: number, concurrency: number, open: (i: number) => Promise<T>): Promise<T[]> {
  const out: T[] = new Array(count);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < count) {
      const i = next++;
      out[i] = await open(i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
  return out;
}

export function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
