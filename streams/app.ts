/**
 * `stream(client, { applicationId })`: an application is a consumer group
 * (group id = applicationId). Each root (an input topic, or an internal
 * repartition topic) is one subscription of the group; each partition the
 * hub assigns becomes a Task, restored from its changelog before its first
 * record, flushed every commitIntervalMs and before it is given up.
 */
import type { Crc32c } from '../protocol/index.ts';
import { batchCrc32c } from '../web-client/runtime.ts';
import { KStream, Topology, type RootDef, type StartFrom, type Table, type ValuesMode } from './builder.ts';
import type { ConsumedRecord, GroupSubscription, ReadyClient, StreamsClient } from './client-contract.ts';
import { StreamsError } from './errors.ts';
import { keyString, zeroMetrics, type StreamMetrics } from './nodes.ts';
import { IdbLocalState, type LocalState } from './idb-state.ts';
import { metricsText, type PartitionLag } from './metrics-text.ts';
import { Slots } from './output-lanes.ts';
import { Task, type TaskEnv, type TaskSettings } from './task.ts';

export interface StreamOptions {
  /** Names the consumer group, the internal topics (`<app>-<name>-repartition`, `<app>-<name>-changelog`) and the producer ids. */
  applicationId: string;
  /**
   * The hub's HTTP base URL (e.g. http://127.0.0.1:8080): start() creates the
   * internal topics there (changelogs compacted). Without it they must exist.
   */
  httpUrl?: string;
  /** Bearer token for creating topics over HTTP. */
  httpToken?: string;
  /** Each task makes its work durable and commits at least this often. Default 100 ms. */
  commitIntervalMs?: number;
  /** A task's input waits while this many of its outputs are queued or in flight, unacknowledged. Default 20,000. */
  maxPendingRecords?: number;
  /** Records per produce request at most (what piled up while requests were in flight). Default 10,000 (the hub's batch limit). */
  maxBatchRecords?: number;
  /** Outputs of one partition a task buffers before sending them ahead of a flush (a flush sends any number). Default 1,000. */
  minBatchRecords?: number;
  /** Produce requests in flight per output partition of a task. Default 4. */
  requestsPerPartition?: number;
  /** Produce requests in flight over the whole app (its one connection; the hub allows 64 per connection by default). Default 32. */
  maxInFlightRequests?: number;
  /** Bytes of input batches the hub may send ahead per subscription. Default 4 MiB. */
  creditBytes?: number;
  restoreTimeoutMs?: number;
  produceTimeoutMs?: number;
  /** Names this instance's changelog producer; default random. */
  instanceId?: string;
  /**
   * Without consumer groups: the partitions of every root this instance owns
   * ('all' = every partition). Each is restored and then read from its
   * restored position; nothing is committed to a group (the changelog's
   * progress record is the position). Default: join the group.
   */
  staticAssignment?: 'all' | Record<string, number[]>;
  /**
   * Where state lives besides the changelog. 'memory' (default): restored
   * from the changelog on every start. 'indexeddb' (browsers): also kept in
   * IndexedDB after every flush, so a reload reads only the changelog's tail.
   */
  state?: 'memory' | 'indexeddb' | LocalState;
  /** Called with failures that stop a task (the application decides whether to exit). */
  onError?: (err: Error) => void;
}

export interface InternalTopic {
  name: string;
  partitions: number;
  config: { cleanupPolicy: 'compact' | 'delete' };
}

const DEFAULTS = {
  commitIntervalMs: 100,
  maxPendingRecords: 20_000,
  maxBatchRecords: 10_000,
  minBatchRecords: 1_000,
  requestsPerPartition: 4,
  maxInFlightRequests: 32,
  creditBytes: 4 * 1024 * 1024,
  restoreTimeoutMs: 120_000,
  produceTimeoutMs: 60_000,
};

function randomId(): string {
  const b = new Uint8Array(6);
  globalThis.crypto.getRandomValues(b);
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}

export class StreamApp {
  readonly topology: Topology;
  private readonly counts = new Map<string, number>();
  private readonly tableData = new Map<string, Map<string, unknown>>();
  private readonly tasks = new Map<string, Task>();
  private readonly subs: GroupSubscription[] = [];
  private readonly metricsNow = zeroMetrics();
  private timer: ReturnType<typeof setInterval> | undefined;
  private started = false;
  private closed = false;
  private readonly instanceId: string;
  private readonly slots: Slots;
  /** The runtime's batch checksum, resolved at start (native CRC-32C in Node). */
  private crc: Crc32c | undefined;
  private local: LocalState | undefined;

  constructor(
    private readonly client: StreamsClient,
    private readonly opts: StreamOptions,
  ) {
    if (!opts || typeof opts.applicationId !== 'string' || !/^[a-zA-Z0-9._-]{1,200}$/.test(opts.applicationId)) {
      throw new StreamsError('UNSUPPORTED', 'applicationId must match [a-zA-Z0-9._-]{1,200}');
    }
    this.topology = new Topology(opts.applicationId);
    this.instanceId = opts.instanceId ?? randomId();
    this.slots = new Slots(opts.maxInFlightRequests ?? DEFAULTS.maxInFlightRequests);
  }

  /** A stream of a topic's records. `from` applies when the group has no committed offset yet (default 'earliest'). */
  from<V = unknown>(topic: string, opts: { from?: StartFrom; values?: ValuesMode } = {}): KStream<string | Uint8Array | null, V> {
    const root = this.topology.addRoot(topic, false, opts.from ?? 'earliest', topic, undefined, undefined, opts.values);
    return new KStream(this.topology, root.node, root, false);
  }

  /** The latest value per key of a (compacted) topic, read whole by every instance; tombstones delete. */
  table<T = unknown>(topic: string): Table<T> {
    const data = new Map<string, unknown>();
    this.tableData.set(topic, data);
    this.topology.tables.set(topic, { topic });
    return {
      topic,
      get: (key: string) => data.get(key) as T | undefined,
      get size() {
        return data.size;
      },
    };
  }

  /** What start() creates when given httpUrl, for those who create topics themselves. */
  async internalTopics(): Promise<InternalTopic[]> {
    const out: InternalTopic[] = [];
    const count = async (r: RootDef): Promise<number> => r.partitions ?? (r.internal && r.feed ? await count(r.feed) : await this.partitionCount(r.topic));
    for (const r of this.topology.roots.values()) {
      const n = await count(r);
      if (r.internal) out.push({ name: r.topic, partitions: n, config: { cleanupPolicy: 'delete' } });
      out.push({ name: this.topology.changelogTopic(r), partitions: n, config: { cleanupPolicy: 'compact' } });
    }
    return out;
  }

  private ready(): ReadyClient {
    const c = this.client;
    if (typeof c.produce !== 'function' || typeof c.produceBatches !== 'function' || typeof c.metadata !== 'function') {
      throw new StreamsError('UNSUPPORTED', 'this client has no produce()/produceBatches()/metadata() (direct idempotent produce): streams needs it for exactly-once output');
    }
    return c as ReadyClient;
  }

  private async partitionCount(topic: string): Promise<number> {
    const known = this.counts.get(topic);
    if (known !== undefined) return known;
    const m = await this.ready().metadata(topic);
    this.counts.set(topic, m.partitions);
    return m.partitions;
  }

  private async createTopics(): Promise<void> {
    if (!this.opts.httpUrl) return;
    const headers: Record<string, string> = { 'content-type': 'application/json', ...this.authHeaders() };
    for (const t of await this.internalTopics()) {
      const res = await fetch(`${this.opts.httpUrl.replace(/\/$/, '')}/v1/topics`, { method: 'POST', headers, body: JSON.stringify(t) });
      if (res.status !== 201 && res.status !== 409) throw new StreamsError('TOPIC_SETUP', `creating ${t.name}: ${res.status} ${await res.text()}`);
      this.counts.set(t.name, t.partitions);
    }
  }

  /** Creates internal topics, reads tables, and joins the group for every root. */
  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    const client = this.ready();
    this.crc = await batchCrc32c();
    const st = this.opts.state ?? 'memory';
    if (st === 'indexeddb') this.local = new IdbLocalState(this.opts.applicationId);
    else if (typeof st === 'object') this.local = st;
    else if (st !== 'memory') throw new StreamsError('UNSUPPORTED', "state is 'memory', 'indexeddb' or a LocalState");
    await this.createTopics();
    const topics = new Set<string>([...this.topology.outputs, ...[...this.topology.roots.values()].flatMap((r) => [r.topic, this.topology.changelogTopic(r)])]);
    for (const t of topics) await this.partitionCount(t);
    for (const [topic, data] of this.tableData) {
      this.subs.push(
        client.subscribe(topic, {
          from: 'earliest',
          onBatch: (rs: ConsumedRecord[]) => {
            for (const r of rs) {
              if (r.key === null) continue;
              const k = keyString(r.key);
              if (r.value === null) data.delete(k);
              else data.set(k, r.value);
            }
          },
        }),
      );
    }
    for (const root of this.topology.roots.values()) {
      if (this.opts.staticAssignment) await this.subscribeStatic(client, root, this.opts.staticAssignment);
      else this.subscribeRoot(client, root);
    }
    const every = this.opts.commitIntervalMs ?? DEFAULTS.commitIntervalMs;
    this.timer = setInterval(() => this.flushAll(), every);
  }

  private settings(root: RootDef): TaskSettings {
    return {
      applicationId: this.opts.applicationId,
      instanceId: this.instanceId,
      changelogTopic: this.topology.changelogTopic(root),
      maxPendingRecords: this.opts.maxPendingRecords ?? DEFAULTS.maxPendingRecords,
      maxBatchRecords: this.opts.maxBatchRecords ?? DEFAULTS.maxBatchRecords,
      minBatchRecords: this.opts.minBatchRecords ?? DEFAULTS.minBatchRecords,
      requestsPerLane: this.opts.requestsPerPartition ?? DEFAULTS.requestsPerPartition,
      restoreTimeoutMs: this.opts.restoreTimeoutMs ?? DEFAULTS.restoreTimeoutMs,
      produceTimeoutMs: this.opts.produceTimeoutMs ?? DEFAULTS.produceTimeoutMs,
    };
  }

  private env(client: ReadyClient, commit: TaskEnv['commit']): TaskEnv {
    return {
      client,
      metrics: this.metricsNow,
      partitionCount: (topic: string) => this.counts.get(topic) ?? 1,
      lookup: (table: string, k: string) => this.tableData.get(table)?.get(k),
      slots: this.slots,
      crc: this.crc,
      local: this.local,
      commit,
    };
  }

  /** Static ownership: restore each partition, then read it from its restored position. */
  private async subscribeStatic(client: ReadyClient, root: RootDef, assignment: 'all' | Record<string, number[]>): Promise<void> {
    const n = this.counts.get(root.topic) ?? (await this.partitionCount(root.topic));
    const mine = assignment === 'all' ? Array.from({ length: n }, (_, p) => p) : (assignment[root.topic] ?? []);
    const env = this.env(client, async () => undefined);
    // Every partition restored before any is read: the first reads do not compete with the other restores, and start() returns before processing begins.
    const tasks = await Promise.all(
      mine.map(async (p) => {
        const t = new Task(root, p, this.settings(root), env);
        await t.restore();
        return t;
      }),
    );
    for (const t of tasks) {
      this.tasks.set(`${root.topic}\u0000${t.partition}`, t);
      const from = t.restoredPosition >= 0 ? t.restoredPosition : root.from;
      this.subs.push(
        client.subscribe(root.topic, { partitions: [t.partition], from, creditBytes: this.opts.creditBytes ?? DEFAULTS.creditBytes, lazyValues: true, onBatch: (rs) => t.processBatch(rs) }),
      );
    }
  }

  private subscribeRoot(client: ReadyClient, root: RootDef): void {
    const settings = this.settings(root);
    const key = (p: number) => `${root.topic}\u0000${p}`;
    let sub: GroupSubscription | undefined;
    const env = this.env(client, async (p: number, offset: number) => {
      if (!sub?.commit) throw new StreamsError('UNSUPPORTED', 'this client has no commit() (consumer groups)');
      await sub.commit({ [p]: offset });
    });
    sub = client.subscribe(root.topic, {
      group: this.opts.applicationId,
      from: root.from,
      autoCommit: false,
      creditBytes: this.opts.creditBytes ?? DEFAULTS.creditBytes,
      // Values are decoded only if a step reads them, and written out from their stored bytes if none replaced them (see Rec).
      lazyValues: true,
      onAssign: async (partitions) => {
        await Promise.all(
          partitions
            .filter((p) => !this.tasks.has(key(p)))
            .map(async (p) => {
              const t = new Task(root, p, settings, env);
              await t.restore();
              this.tasks.set(key(p), t);
            }),
        );
      },
      onRevoke: async (partitions) => {
        await Promise.all(
          partitions.map(async (p) => {
            const t = this.tasks.get(key(p));
            this.tasks.delete(key(p));
            if (t) await t.flush().catch((e: unknown) => this.fail(e));
          }),
        );
      },
      // One call per input frame (one partition): the task runs the whole array, then the subscription awaits at most one flush.
      onBatch: (rs: ConsumedRecord[]) => {
        const p = rs[0].partition;
        const t = this.tasks.get(key(p));
        if (!t) throw new StreamsError('TASK_FAILED', `records of ${root.topic}/${p}, which this instance has no task for`);
        return t.processBatch(rs);
      },
    });
    this.subs.push(sub);
  }

  private flushAll(): void {
    for (const t of this.tasks.values()) if (t.hasWork) t.flush().catch((e: unknown) => this.fail(e));
  }

  private fail(e: unknown): void {
    const err = e instanceof Error ? e : new Error(String(e));
    if (this.opts.onError) this.opts.onError(err);
    else console.error(err);
  }

  /** Counters since start (all tasks of this instance). */
  metrics(): StreamMetrics {
    return { ...this.metricsNow };
  }

  /**
   * The counters and, per input partition this instance holds, position,
   * lag in records (when httpUrl is set: the high watermark is read from the
   * hub's HTTP API) and event-time lag, in the Prometheus text format.
   */
  async metricsText(): Promise<string> {
    const tasks = [...this.tasks.values()];
    const hw = new Map<string, number>();
    if (this.opts.httpUrl) {
      for (const topic of new Set(tasks.map((t) => t.root.topic))) {
        const res = await fetch(`${this.opts.httpUrl.replace(/\/$/, '')}/v1/topics/${encodeURIComponent(topic)}`, { headers: this.authHeaders() }).catch(() => undefined);
        if (!res?.ok) continue;
        const d = (await res.json()) as { offsets?: Array<{ partition: number; highWatermark: number }> };
        for (const o of d.offsets ?? []) hw.set(`${topic}/${o.partition}`, o.highWatermark);
      }
    }
    const lags: PartitionLag[] = tasks.map((t) => ({
      topic: t.root.topic,
      partition: t.partition,
      position: t.restoredPosition,
      highWatermark: hw.get(`${t.root.topic}/${t.partition}`),
      lastTimestamp: t.lastTimestamp,
    }));
    return metricsText(this.opts.applicationId, this.metricsNow, lags, Date.now());
  }

  private authHeaders(): Record<string, string> {
    return this.opts.httpToken ? { authorization: `Bearer ${this.opts.httpToken}` } : {};
  }

  /** Input partitions this instance holds, as `topic/partition`. */
  assignment(): string[] {
    return [...this.tasks.values()].map((t) => `${t.root.topic}/${t.partition}`).sort();
  }

  /** Next input offset per partition this instance holds (`topic/partition` → offset; -1 before its first record). */
  positions(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const t of this.tasks.values()) out[`${t.root.topic}/${t.partition}`] = t.restoredPosition;
    return out;
  }

  /** Makes everything processed so far durable and committed. */
  async flush(): Promise<void> {
    await Promise.all([...this.tasks.values()].map((t) => t.flush()));
  }

  /** Flushes, then leaves the group (the partitions move to the other instances). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    await this.flush().catch((e: unknown) => this.fail(e));
    for (const s of this.subs) s.close();
    this.tasks.clear();
    if (this.opts.state === 'indexeddb') this.local?.close();
  }
}

/** Starts describing a stream application over a client; `await app.start()` runs it. */
export function stream(client: StreamsClient, opts: StreamOptions): StreamApp {
  return new StreamApp(client, opts);
}
