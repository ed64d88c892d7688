/**
 * What the harness asks a load process to do, and what the load process
 * answers. The job travels as JSON in argv; the answer is one line
 * `RESULT {json}` on stdout.
 */

/** How to reach the system under test. */
export interface Target {
  /** Which client speaks to it. */
  kind: 'ws' | 'nats' | 'redis' | 'mqtt';
  port: number;
  /** ws: the path of the WebSocket endpoint. */
  path?: string;
  /** ws: the system speaks the hub's protocol beyond produce (subscribe, credit). */
  hubProtocol?: boolean;
  /**
   * ws: the hub runs with auth on and this HS256 secret (random per run, loopback only):
   * each connection says hello with its own token, subject `bench-<n>`, as distinct devices would.
   */
  authSecret?: string;
  /** Topic / stream / subject / key. */
  topic: string;
  /** pid of the server process, for RSS sampling. */
  serverPid?: number;
}

export interface ProduceParams {
  producers: number;
  /**
   * How a produce frame carries its events: `records` (wire records the hub
   * encodes into a batch) or `batch` (one record batch the producer encoded,
   * protocol/batch.ts, stored as it is). Only the WebSocket systems have a batch form.
   */
  form: 'records' | 'batch';
  /** Records per request where the system batches (one frame, one pipeline). */
  batch: number;
  valueBytes: number;
  /** Requests (batches) in flight per producer. */
  window: number;
  durationMs: number;
  /** Acks before this are not counted (connections, JIT and caches warm up). */
  warmupMs: number;
  /** Hard cap on events, whatever the duration. */
  maxEvents: number;
}

export interface ReplayParams {
  events: number;
  valueBytes: number;
  batch: number;
  timeoutMs: number;
}

export interface LatencyParams {
  /** Events per second, steady. */
  rate: number;
  durationMs: number;
  valueBytes: number;
  /** Discard the first measurements (connection warm-up). */
  warmupMs: number;
}

export interface FanoutParams extends LatencyParams {
  subscribers: number;
}

export interface ConnectionsParams {
  count: number;
  /** Sockets opened at once. */
  concurrency: number;
  timeoutMs: number;
  /** Time to let the server settle before sampling its RSS. */
  settleMs: number;
  /**
   * ws: connections per loopback source address. The first this many take the
   * kernel's source address; each next block binds to 127.0.0.2, 127.0.0.3, …,
   * each with its own ephemeral ports (32768–60999 holds about 28,000 towards
   * one server port). Binding first makes each connect slower (the kernel
   * searches for a free port), so the default spreads only past 20,000.
   */
  perSourceAddress?: number;
}

export type Job =
  | { scenario: 'produce'; target: Target; params: ProduceParams }
  | { scenario: 'replay'; target: Target; params: ReplayParams }
  | { scenario: 'latency'; target: Target; params: LatencyParams }
  | { scenario: 'fanout'; target: Target; params: FanoutParams }
  | { scenario: 'connections'; target: Target; params: ConnectionsParams };

export interface Percentiles {
  count: number;
  p50Ms: number;
  p99Ms: number;
  p999Ms: number;
}

export interface LoadResult {
  /** Events acknowledged (produce), read (replay), delivered (latency, fanout) or connections held. */
  events: number;
  /** Payload bytes behind `events`. */
  bytes: number;
  elapsedMs: number;
  latency?: Percentiles;
  /** Server RSS: after the connections were opened (connections) or at the end. */
  rssBytes?: number;
  /** Server RSS before the connections were opened. */
  rssBaseBytes?: number;
  errors: number;
  notes: string[];
}

export const RESULT_PREFIX = 'RESULT ';
