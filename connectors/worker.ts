/**
 * What the sink and source runners share: the status record, pause, and
 * the retry loop. The runtime owns retries so a task never does: every
 * failed call is retried after a full-jitter backoff capped at capMs, for as
 * long as it keeps failing (an event is never dropped to make progress), and
 * the status says `backoff` with the last error meanwhile.
 */
import type { Logger } from 'pino';
import { TributaryError } from '../protocol/errors.ts';
import type { Client } from '../web-client/index.ts';
import { backoffDelayMs, sleep } from './backoff.ts';
import type { ConnectorConfig } from './config.ts';
import type { HubHttp } from './hub-http.ts';
import type { ConnectorStatus } from './task.ts';

export type Log = Pick<Logger, 'info' | 'warn' | 'error' | 'debug'>;

export interface WorkerDeps {
  client: Client;
  http: HubHttp;
  log: Log;
}

export abstract class Worker {
  readonly status: ConnectorStatus;
  protected readonly abort = new AbortController();
  private pausedUntil: { promise: Promise<void>; resolve: () => void } | null = null;

  constructor(
    readonly config: ConnectorConfig,
    kind: 'source' | 'sink',
    protected readonly deps: WorkerDeps,
  ) {
    this.status = { name: config.name, type: config.type, kind, topic: config.topic, state: 'starting', records: 0, deadLettered: 0, retries: 0, lastError: null, lag: null, partitions: [] };
  }

  abstract start(): Promise<void>;
  abstract stop(): Promise<void>;

  protected get stopping(): boolean {
    return this.abort.signal.aborted;
  }

  /** Stops handing work to the task (in-flight calls finish) until resume(). */
  pause(): void {
    if (this.pausedUntil || this.stopping) return;
    let resolve!: () => void;
    const promise = new Promise<void>((r) => (resolve = r));
    this.pausedUntil = { promise, resolve };
    this.status.state = 'paused';
  }

  resume(): void {
    if (!this.pausedUntil) return;
    this.pausedUntil.resolve();
    this.pausedUntil = null;
    if (this.status.state === 'paused') this.status.state = 'running';
  }

  protected get paused(): boolean {
    return this.pausedUntil !== null;
  }

  protected async whileUnpaused(): Promise<void> {
    while (this.pausedUntil && !this.stopping) await this.pausedUntil.promise;
  }

  /** Calls fn until it succeeds (or the worker stops: then throws StoppedError). */
  protected async retrying<T>(what: string, fn: () => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      await this.whileUnpaused();
      if (this.stopping) throw new StoppedError();
      try {
        const r = await fn();
        if (attempt > 0 || this.status.state === 'backoff' || this.status.state === 'starting') this.status.state = this.pausedUntil ? 'paused' : 'running';
        return r;
      } catch (err) {
        if (this.stopping) throw new StoppedError();
        if (err instanceof TributaryError && err.code === 'BAD_CONFIG') {
          // A mistake in the file: retrying cannot help.
          this.status.state = 'failed';
          this.status.lastError = `${what}: ${err.message}`;
          throw err;
        }
        const message = err instanceof Error ? err.message : String(err);
        this.status.retries++;
        this.status.lastError = `${what}: ${message}`;
        this.status.state = 'backoff';
        const delay = backoffDelayMs(attempt, this.config.backoff);
        this.deps.log.warn({ connector: this.config.name, attempt, delayMs: delay, err: message }, `${what} failed; retrying`);
        await sleep(delay, this.abort.signal);
      }
    }
  }
}

/** Thrown out of a retry loop by stop(): not a failure. */
export class StoppedError extends Error {
  constructor() {
    super('connector stopped');
    this.name = 'StoppedError';
  }
}
