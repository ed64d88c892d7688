/**
 * The connectors runtime: one web client to the hub, one worker per
 * connector of the file, their status and metrics. Used by
 * `tributary connect FILE` and by the hub's `--connectors FILE`.
 */
import promClient from 'prom-client';
import { createClient, type Client } from '../web-client/node.ts';
import type { ConnectFile } from './config.ts';
import { createWorker } from './connector-types.ts';
import { HubHttp, httpBaseOf } from './hub-http.ts';
import type { ConnectorStatus } from './task.ts';
import type { Log, Worker } from './worker.ts';

export interface RuntimeOptions {
  /** The hub's WebSocket URL (overrides the file's hub.url). */
  url?: string;
  token?: string;
  log: Log;
}

export class ConnectorRuntime {
  readonly client: Client;
  private readonly workers: Worker[];
  readonly registry = new promClient.Registry();

  private readonly log: Log;

  constructor(file: ConnectFile, o: RuntimeOptions) {
    this.log = o.log;
    const url = o.url ?? file.hub.url;
    if (!url) throw new Error('connectors need the hub: hub.url in the file, or --hub URL');
    const token = o.token ?? file.hub.token;
    this.client = createClient({ url, token, outbox: 'memory', name: 'connectors', backoffMaxMs: 5000 });
    this.client.on('error', (err) => o.log.warn({ err: err.message }, 'connectors client'));
    const http = new HubHttp(httpBaseOf(url), async () => token);
    const ctx = { client: this.client, http, log: o.log };
    this.workers = file.connectors.map((c) => createWorker(c, ctx));
    this.registerMetrics();
  }

  async start(): Promise<void> {
    // A connector that cannot start (failed: a mistake in its settings) does not stop the others.
    await Promise.all(
      this.workers.map((w) => w.start().catch((err: unknown) => this.log.error({ connector: w.config.name, err: err instanceof Error ? err.message : String(err) }, 'connector failed'))),
    );
  }

  status(): ConnectorStatus[] {
    return this.workers.map((w) => structuredClone(w.status));
  }

  worker(name: string): Worker | undefined {
    return this.workers.find((w) => w.config.name === name);
  }

  /** Pauses or resumes one connector; its status, or undefined when there is no such connector. */
  control(name: string, action: 'pause' | 'resume'): ConnectorStatus | undefined {
    const w = this.worker(name);
    if (!w) return undefined;
    if (action === 'pause') w.pause();
    else w.resume();
    return structuredClone(w.status);
  }

  async stop(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.stop()));
    await this.client.close();
  }

  private registerMetrics(): void {
    const statuses = (): ConnectorStatus[] => this.workers.map((w) => w.status);
    const labels = ['connector', 'type'] as const;
    const STATES = ['starting', 'running', 'backoff', 'paused', 'failed', 'stopped'] as const;
    new promClient.Gauge({
      name: 'tributary_connector_up',
      help: 'Connector state: 1 for the state it is in (running, backoff, paused, failed, …)',
      labelNames: [...labels, 'state'],
      registers: [this.registry],
      collect() {
        this.reset();
        for (const s of statuses()) for (const st of STATES) this.set({ connector: s.name, type: s.type, state: st }, s.state === st ? 1 : 0);
      },
    });
    // Counters, not gauges: Prometheus' rate() and increase() need `# TYPE … counter`. The status
    // keeps running totals, so each scrape adds what they grew by since the last one.
    const counter = (name: string, help: string, pick: (s: ConnectorStatus) => number): void => {
      const reported = new Map<string, number>();
      new promClient.Counter({
        name,
        help,
        labelNames: labels,
        registers: [this.registry],
        collect() {
          for (const s of statuses()) {
            const before = reported.get(s.name) ?? 0;
            const now = Math.max(pick(s), before);
            // inc by 0 still shows the series (at 0) from the first scrape.
            this.inc({ connector: s.name, type: s.type }, now - before);
            reported.set(s.name, now);
          }
        },
      });
    };
    counter('tributary_connector_records_total', 'Records written (sinks) or produced (sources) since start', (s) => s.records);
    counter('tributary_connector_dead_lettered_total', 'Records sent to the dead-letter topic since start', (s) => s.deadLettered);
    counter('tributary_connector_retries_total', 'Failed attempts (each retried with backoff) since start', (s) => s.retries);
    new promClient.Gauge({
      name: 'tributary_connector_lag',
      help: 'Sink lag: high watermark minus committed offset',
      labelNames: [...labels, 'partition'],
      registers: [this.registry],
      collect() {
        this.reset();
        for (const s of statuses()) {
          if (s.kind !== 'sink') continue;
          for (const p of s.partitions)
            if (p.committed !== null && p.highWatermark !== null) this.set({ connector: s.name, type: s.type, partition: String(p.partition) }, Math.max(0, p.highWatermark - p.committed));
        }
      },
    });
  }
}
