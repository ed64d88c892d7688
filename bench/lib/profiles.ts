/**
 * How long and how big each scenario runs: `quick` finishes every scenario in
 * about two minutes, `full` runs long enough for stable figures (a full run
 * stays under ~15 minutes).
 */
import type { ConnectionsParams, FanoutParams, LatencyParams, ProduceParams, ReplayParams } from '../load/job.ts';

export interface Profile {
  produce: Omit<ProduceParams, 'producers' | 'form'>;
  replay: ReplayParams;
  latency: LatencyParams;
  fanout: FanoutParams;
  connections: ConnectionsParams;
}

const VALUE_BYTES = 100;
const BATCH = 100;
/**
 * The latency run's unmeasured warm-up at the measured rate, the same for
 * every system. A fresh hub keeps compiling hot functions for about 4 s of
 * 10,000 events/s (--trace-opt: ~60 TurboFan jobs in the first second, still
 * 10–20 per second at 3–4 s); a hub in service is warm. With 2 s instead of
 * 0.5 s the hub used ~17% less CPU in the quick window (issue 13).
 */
const LATENCY_WARMUP_MS = { quick: 2_000, full: 5_000 } as const;
/** Batches in flight per producer: enough that group commit has something to group. */
const WINDOW = 64;

/**
 * Batches in flight per producer for each client, the best of a sweep over
 * 1–64 on this machine: more than this made the Node clients of the peers
 * slower (nats.js keeps a timer and a promise per in-flight publish).
 */
export const WINDOW_BY_CLIENT = { ws: WINDOW, nats: 1, redis: 16, mqtt: 16 } as const;

export const PROFILES: Record<'quick' | 'full', Profile> = {
  quick: {
    produce: { batch: BATCH, valueBytes: VALUE_BYTES, window: WINDOW, durationMs: 2_000, warmupMs: 500, maxEvents: 50_000_000 },
    replay: { events: 200_000, valueBytes: VALUE_BYTES, batch: BATCH, timeoutMs: 60_000 },
    latency: { rate: 10_000, durationMs: 3_000, valueBytes: VALUE_BYTES, warmupMs: LATENCY_WARMUP_MS.quick },
    fanout: { subscribers: 200, rate: 1_000, durationMs: 3_000, valueBytes: VALUE_BYTES, warmupMs: 500 },
    connections: { count: 1_000, concurrency: 100, timeoutMs: 60_000, settleMs: 500 },
  },
  full: {
    produce: { batch: BATCH, valueBytes: VALUE_BYTES, window: WINDOW, durationMs: 10_000, warmupMs: 1_000, maxEvents: 200_000_000 },
    replay: { events: 1_000_000, valueBytes: VALUE_BYTES, batch: BATCH, timeoutMs: 180_000 },
    latency: { rate: 10_000, durationMs: 15_000, valueBytes: VALUE_BYTES, warmupMs: LATENCY_WARMUP_MS.full },
    fanout: { subscribers: 1_000, rate: 1_000, durationMs: 15_000, valueBytes: VALUE_BYTES, warmupMs: 2_000 },
    connections: { count: 10_000, concurrency: 200, timeoutMs: 180_000, settleMs: 2_000 },
  },
};
