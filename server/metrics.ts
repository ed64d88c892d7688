/**
 * Prometheus metrics (prom-client), one registry per hub. Counters are
 * bumped on the hot paths with pre-resolved label children, so no label
 * lookups per record.
 */
import client from 'prom-client';
import type { ErrorCode } from '../protocol/errors.ts';

/** The refusal kinds counted in `tributary_refusals_total{reason}`, by the error code that answers them. */
const REFUSAL_REASONS: Readonly<Partial<Record<ErrorCode, string>>> = Object.freeze({
  UNAUTHENTICATED: 'unauthenticated',
  TOKEN_INVALID: 'token_invalid',
  TOKEN_EXPIRED: 'token_expired',
  FORBIDDEN: 'forbidden',
  SUBJECT_CHANGED: 'forbidden',
  ORIGIN_FORBIDDEN: 'origin',
  RATE_LIMITED: 'rate_limited',
  TOO_MANY_CONNECTIONS: 'too_many_connections',
  TOO_MANY_SUBSCRIPTIONS: 'too_many_subscriptions',
  TOO_MANY_IN_FLIGHT: 'too_many_in_flight',
  AUTH_TIMEOUT: 'auth_timeout',
  IDLE_TIMEOUT: 'idle_timeout',
});

export interface StorageSizeSource {
  /** Total bytes on disk over every partition. */
  storageBytes(): number;
  topicCount(): number;
  /** Damage the storage engine found in its files (start-up scrub). */
  storageProblems(): number;
}

/** Consumer groups as /metrics reads them (computed at scrape time). */
export interface GroupStatsSource {
  lagRows(): Array<{ group: string; topic: string; partition: number; lag: number }>;
  memberCounts(): Array<{ group: string; members: number }>;
}

export class HubMetrics {
  readonly registry = new client.Registry();
  readonly connections: client.Gauge;
  readonly connectionsTotal: client.Counter;
  readonly subscriptions: client.Gauge;
  readonly produceRequests: client.Counter;
  readonly producedRecords: client.Counter;
  readonly producedBytes: client.Counter;
  readonly duplicateRecords: client.Counter;
  readonly produceLatency: client.Histogram;
  readonly deliveredBatchesBytes: client.Counter;
  readonly deliveredFrames: client.Counter;
  readonly httpReadRecords: client.Counter;
  readonly httpRequests: client.Counter<'route' | 'status'>;
  readonly errors: client.Counter<'code'>;
  readonly limitRejections: client.Counter<'limit'>;
  readonly refusals: client.Counter<'reason'>;
  readonly slowConsumerCloses: client.Counter;
  readonly pausedConnections: client.Gauge;
  readonly groupRebalances: client.Counter<'group'>;
  private groupStats: GroupStatsSource | null = null;

  constructor(storage: StorageSizeSource) {
    const r = this.registry;
    client.collectDefaultMetrics({ register: r, prefix: 'tributary_process_' });
    this.connections = new client.Gauge({ name: 'tributary_connections', help: 'open WebSocket connections', registers: [r] });
    this.connectionsTotal = new client.Counter({ name: 'tributary_connections_total', help: 'WebSocket connections accepted', registers: [r] });
    this.subscriptions = new client.Gauge({ name: 'tributary_subscriptions', help: 'active subscriptions', registers: [r] });
    this.produceRequests = new client.Counter({ name: 'tributary_produce_requests_total', help: 'produce requests acknowledged (WS and HTTP)', registers: [r] });
    this.producedRecords = new client.Counter({ name: 'tributary_produced_records_total', help: 'records appended', registers: [r] });
    this.producedBytes = new client.Counter({ name: 'tributary_produced_bytes_total', help: 'batch bytes appended', registers: [r] });
    this.duplicateRecords = new client.Counter({ name: 'tributary_duplicate_records_total', help: 'records of idempotent retries answered with their original offsets', registers: [r] });
    this.produceLatency = new client.Histogram({
      name: 'tributary_produce_latency_seconds',
      help: 'produce request received → durable ack',
      buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
      registers: [r],
    });
    this.deliveredBatchesBytes = new client.Counter({ name: 'tributary_delivered_bytes_total', help: 'batch bytes sent to subscribers', registers: [r] });
    this.deliveredFrames = new client.Counter({ name: 'tributary_delivered_frames_total', help: 'records frames sent to subscribers', registers: [r] });
    this.httpReadRecords = new client.Counter({ name: 'tributary_http_read_records_total', help: 'records returned by GET …/records', registers: [r] });
    this.httpRequests = new client.Counter({ name: 'tributary_http_requests_total', help: 'HTTP requests by route and status', labelNames: ['route', 'status'], registers: [r] });
    this.errors = new client.Counter({ name: 'tributary_errors_total', help: 'errors answered, by code', labelNames: ['code'], registers: [r] });
    this.limitRejections = new client.Counter({ name: 'tributary_limit_rejections_total', help: 'requests or connections refused by a limit', labelNames: ['limit'], registers: [r] });
    this.refusals = new client.Counter({
      name: 'tributary_refusals_total',
      help: 'requests and connections refused by authentication, authorization, origin or a quota, by reason',
      labelNames: ['reason'],
      registers: [r],
    });
    // Present from the start (at 0), so a dashboard can tell "none yet" from "not exported".
    for (const reason of new Set(Object.values(REFUSAL_REASONS))) this.refusals.inc({ reason }, 0);
    this.slowConsumerCloses = new client.Counter({ name: 'tributary_slow_consumer_closes_total', help: 'connections closed as slow consumers', registers: [r] });
    this.pausedConnections = new client.Gauge({ name: 'tributary_paused_connections', help: 'connections paused by send-buffer backpressure', registers: [r] });
    this.groupRebalances = new client.Counter({
      name: 'tributary_group_rebalances_total',
      help: 'consumer-group rebalances (generations started by joins, leaves, expiries, partition changes)',
      labelNames: ['group'],
      registers: [r],
    });
    this.registerCollectedGauges(storage);
  }

  /** Gauges read when /metrics is scraped: group lag and members, storage size and damage, topics. */
  private registerCollectedGauges(storage: StorageSizeSource): void {
    const r = this.registry;
    const groups = (): GroupStatsSource | null => this.groupStats;
    new client.Gauge({
      name: 'tributary_group_lag',
      help: "records behind: high watermark minus the group's committed offset",
      labelNames: ['group', 'topic', 'partition'],
      registers: [r],
      collect() {
        this.reset();
        for (const row of groups()?.lagRows() ?? []) this.set({ group: row.group, topic: row.topic, partition: String(row.partition) }, row.lag);
      },
    });
    new client.Gauge({
      name: 'tributary_group_members',
      help: 'members of each consumer group (connected or within their session timeout)',
      labelNames: ['group'],
      registers: [r],
      collect() {
        this.reset();
        for (const row of groups()?.memberCounts() ?? []) this.set({ group: row.group }, row.members);
      },
    });
    new client.Gauge({
      name: 'tributary_storage_bytes',
      help: 'bytes on disk over every partition',
      registers: [r],
      collect() {
        this.set(storage.storageBytes());
      },
    });
    new client.Gauge({
      name: 'tributary_storage_problems',
      help: 'damaged or missing ranges the storage engine found in its files (details in the log and /healthz)',
      registers: [r],
      collect() {
        this.set(storage.storageProblems());
      },
    });
    new client.Gauge({
      name: 'tributary_topics',
      help: 'topics',
      registers: [r],
      collect() {
        this.set(storage.topicCount());
      },
    });
  }

  /** Where the group gauges read from (the broker's groups, once created). */
  watchGroups(source: GroupStatsSource): void {
    this.groupStats = source;
  }

  /** Count an error answered (frame, close or HTTP status), and its refusal kind when it is one. */
  countError(code: ErrorCode): void {
    this.errors.inc({ code });
    const reason = REFUSAL_REASONS[code];
    if (reason !== undefined) this.refusals.inc({ reason });
  }

  /** Registries of parts that keep their own (the in-hub connectors), rendered after the hub's. */
  private readonly extra: client.Registry[] = [];

  addRegistry(r: client.Registry): void {
    this.extra.push(r);
  }

  async render(): Promise<{ contentType: string; body: string }> {
    let body = await this.registry.metrics();
    for (const r of this.extra) body += '\n' + (await r.metrics());
    return { contentType: this.registry.contentType, body };
  }
}
