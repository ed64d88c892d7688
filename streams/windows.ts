/**
 * Event-time windows (Kafka Streams' TimeWindows and SessionWindows), as pure
 * functions of timestamps: which windows a record falls in, when a window
 * closes, and how sessions merge. Windows are half-open, [start, end).
 *
 * A window is *closed* once stream time (the highest event time the task has
 * seen on its input partition) reaches end + graceMs: a record for a closed
 * window is dropped and counted. A record whose window has ended in stream
 * time but is still within grace is *late but accepted* and counted too.
 */
import { TributaryError } from '../protocol/index.ts';

export type WindowSpec = { tumblingMs: number; graceMs?: number } | { hoppingMs: number; advanceMs: number; graceMs?: number } | { sessionGapMs: number; graceMs?: number };

/** Most windows one record may fall in (hopping size / advance): a guard against a typo such as advanceMs 1. */
const MAX_WINDOWS_PER_RECORD = 1000;

export type NormalizedWindows = { kind: 'time'; sizeMs: number; advanceMs: number; graceMs: number } | { kind: 'session'; gapMs: number; graceMs: number };

function positiveInt(n: unknown, what: string): number {
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n <= 0) throw new TributaryError('BAD_REQUEST', `${what} must be a positive integer (ms)`);
  return n;
}

export function normalizeWindows(spec: WindowSpec): NormalizedWindows {
  const graceMs = spec.graceMs ?? 0;
  if (!Number.isSafeInteger(graceMs) || graceMs < 0) throw new TributaryError('BAD_REQUEST', 'graceMs must be a non-negative integer (ms)');
  if ('tumblingMs' in spec) {
    const size = positiveInt(spec.tumblingMs, 'tumblingMs');
    return { kind: 'time', sizeMs: size, advanceMs: size, graceMs };
  }
  if ('hoppingMs' in spec) {
    const size = positiveInt(spec.hoppingMs, 'hoppingMs');
    const advance = positiveInt(spec.advanceMs, 'advanceMs');
    if (advance > size) throw new TributaryError('BAD_REQUEST', 'advanceMs must not exceed hoppingMs');
    if (Math.ceil(size / advance) > MAX_WINDOWS_PER_RECORD) throw new TributaryError('BAD_REQUEST', `hoppingMs / advanceMs exceeds ${MAX_WINDOWS_PER_RECORD} windows per record`);
    return { kind: 'time', sizeMs: size, advanceMs: advance, graceMs };
  }
  if ('sessionGapMs' in spec) return { kind: 'session', gapMs: positiveInt(spec.sessionGapMs, 'sessionGapMs'), graceMs };
  throw new TributaryError('BAD_REQUEST', 'a window is { tumblingMs }, { hoppingMs, advanceMs } or { sessionGapMs }');
}

/** Start times of the time windows containing `ts`, oldest first (aligned to the epoch, as Kafka's). */
export function windowStartsFor(ts: number, sizeMs: number, advanceMs: number): number[] {
  const last = ts - (((ts % advanceMs) + advanceMs) % advanceMs);
  const out: number[] = [];
  for (let s = last; s > ts - sizeMs; s -= advanceMs) out.push(s);
  return out.reverse();
}

/** True once stream time has passed the window's end plus grace: no record may change it any more. */
export function isClosed(windowEnd: number, graceMs: number, streamTime: number): boolean {
  return windowEnd + graceMs <= streamTime;
}
