/**
 * The stream-processing bench's input and pipelines, shared by the bench's
 * main thread (bench/streams.ts), its instance threads
 * (bench/streams-instance.ts) and the task-alone rows (bench/streams-task.ts).
 */
import { keyedEvents, type InputEvent } from '../harness/stream-input.ts';
import type { StreamApp } from '../streams/index.ts';

/** ~100-byte JSON values, keyed (1,000 keys), one event per ms of event time. */
export function benchInput(n: number): InputEvent[] {
  return keyedEvents(n, 1000, 1_700_000_000_000, 1).map((e, i) => ({ ...e, value: { i, kind: i % 2 ? 'temp' : 'hum', room: `room-${i % 1000}`, c: 20 + (i % 7), pad: 'x'.repeat(32) } }));
}

/** values 'view': the same steps over read-only JSON views (fields decoded as read) instead of decoded values. */
const stateless = (values: 'decoded' | 'view', out: string) => (app: StreamApp) =>
  app
    .from<{ kind: string; c: number; room: string }>('in', { values })
    .filter((r) => r.value.kind === 'temp')
    .mapValues((r) => ({ room: r.value.room, f: r.value.c * 1.8 + 32 }))
    .to(out);
const windowed = (emit: 'update' | 'final', out: string) => (app: StreamApp) => app.from('in').groupByKey().window({ tumblingMs: 10_000, graceMs: 1_000, emit }).count({ name: 'counts' }).to(out);

/** By name, so an instance thread builds the same topology from its workerData. */
export const PIPELINES = {
  stateless: stateless('decoded', 'stateless-out'),
  'stateless-view': stateless('view', 'stateless-view-out'),
  windowed: windowed('update', 'windowed-out'),
  'windowed-final': windowed('final', 'windowed-final-out'),
  consume: (app: StreamApp) =>
    app
      .from<{ kind: string }>('in')
      .filter((r) => r.value.kind === 'none')
      .to('nowhere'),
} satisfies Record<string, (app: StreamApp) => void>;

export type PipelineName = keyof typeof PIPELINES;
