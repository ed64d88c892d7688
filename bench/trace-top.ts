/**
 * Where one Chromium thread spent its CPU, from a Chrome trace: each traced
 * task's thread time (`tdur`) less its traced children's, summed by the path
 * of the last levels of nesting, highest first. Unlike a CDP CPU profile
 * (wall-clock samples, which on a loaded machine charge the time a thread
 * waited for a CPU to whatever it was in), this is the thread's own CPU, and
 * it sees Blink's and V8's native work (receiving WebSocket data, GC
 * callbacks) that a profile lumps into "(program)".
 *   BROWSER_REPLAY_TRACE=/tmp/trace node --import tsx bench/browser-replay.ts --quick --only handler
 *   node --import tsx bench/trace-top.ts /tmp/trace/browser-replay-handler-*.json [THREAD] [EVENTS]
 * THREAD: a thread name (default CrRendererMain; the socket worker is
 * "DedicatedWorker thread"). EVENTS: the replay's event count, to print µs per event.
 */
import fs from 'node:fs';

interface TraceEvent {
  name: string;
  ph: string;
  pid: number;
  tid: number;
  ts: number;
  dur?: number;
  tdur?: number;
  args?: { name?: string };
}

const DEPTH = 4;
const TOP = 25;

/** Self thread time (µs) per path of nesting (the last DEPTH names) on the named thread(s). */
export function threadSelfTimes(events: TraceEvent[], thread: string): Map<string, number> {
  const named = new Set(events.filter((e) => e.ph === 'M' && e.name === 'thread_name' && e.args?.name === thread).map((e) => `${e.pid}:${e.tid}`));
  const spans = events
    .filter((e) => e.ph === 'X' && e.tdur !== undefined && named.has(`${e.pid}:${e.tid}`))
    .sort((a, b) => a.ts - b.ts || (b.dur ?? 0) - (a.dur ?? 0) || (b.tdur ?? 0) - (a.tdur ?? 0));
  const self = new Map<string, number>();
  const stack: Array<{ e: TraceEvent; path: string; self: number }> = [];
  const close = (): void => {
    const top = stack.pop()!;
    self.set(top.path, (self.get(top.path) ?? 0) + Math.max(0, top.self));
  };
  for (const e of spans) {
    while (stack.length && e.ts >= stack[stack.length - 1].e.ts + (stack[stack.length - 1].e.dur ?? 0)) close();
    if (stack.length) stack[stack.length - 1].self -= e.tdur!;
    const path = [...stack.slice(-(DEPTH - 1)).map((s) => s.e.name), e.name].join(' / ');
    stack.push({ e, path, self: e.tdur! });
  }
  while (stack.length) close();
  return self;
}

function main(): void {
  const [file, thread = 'CrRendererMain', eventsArg] = process.argv.slice(2);
  if (!file) {
    console.error('usage: trace-top.ts TRACE.json [THREAD] [EVENTS]');
    process.exit(2);
  }
  const parsed = JSON.parse(fs.readFileSync(file, 'utf8')) as { traceEvents: TraceEvent[] } | TraceEvent[];
  const self = threadSelfTimes(Array.isArray(parsed) ? parsed : parsed.traceEvents, thread);
  const total = [...self.values()].reduce((a, b) => a + b, 0);
  const events = Number(eventsArg ?? 0);
  console.log(`${thread}: ${(total / 1000).toFixed(1)} ms of thread CPU in traced tasks${events ? ` (${(total / events).toFixed(2)} µs per event)` : ''}`);
  for (const [path, us] of [...self].sort((a, b) => b[1] - a[1]).slice(0, TOP))
    console.log(`${((100 * us) / total).toFixed(1).padStart(5)}%  ${(us / 1000).toFixed(1).padStart(8)} ms${events ? `  ${(us / events).toFixed(3).padStart(6)} µs/event` : ''}  ${path}`);
}

if (import.meta.url === `file://${process.argv[1]}`) main();
