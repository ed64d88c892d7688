/**
 * `LogStore` on NATS JetStream: hubs keep no state of their own. Each
 * partition is a stream (names.ts), each message one stored record batch
 * (stored-batch.ts); the topic catalog is a key-value bucket every hub
 * watches, so a topic created through one hub exists on all of them; a
 * partition this hub has subscribers of is watched (partition-watches.ts),
 * so the hub learns of appends made through other hubs and wakes them.
 *
 * Topic config maps onto the stream: replicas → num_replicas (default 3 on
 * a cluster of three or more nodes, else 1), retentionMs → max_age,
 * retentionBytes → max_bytes (whole batches go, oldest first). fsync and
 * segment settings are JetStream's own (server config); compaction is not
 * performed (a compacted topic keeps everything until retention).
 *
 * A store opened with `mirror` serves a second region: its servers are a
 * cluster of the same JetStream super-cluster (joined by a gateway), the
 * catalog is the home region's, and each listed topic's partitions are read
 * from mirror streams placed in this cluster (`mirrorStreamName`), which
 * JetStream fills asynchronously from the home streams. Such a store is
 * read-only: appends and topic changes answer FORBIDDEN.
 */
import { randomUUID } from 'node:crypto';
import { connect, DiscardPolicy, RetentionPolicy, StorageType, type JetStreamClient, type JetStreamManager, type KV, type NatsConnection, type Placement, type StreamConfig } from 'nats';
import type { Crc32c } from '../../../protocol/crc32c.ts';
import { TributaryError } from '../../../protocol/errors.ts';
import { assertTopicName } from '../../../protocol/limits.ts';
import { DEFAULT_TOPIC_CONFIG, type AppendResult, type GroupLink, type LogStore, type PartitionOffsets, type ReadResult, type TopicConfig, type TopicInfo } from '../log-store.ts';
import { nativeCrc32c } from '../native-crc.ts';
import { checkConfigOverrides, checkPartitions } from '../topic-config.ts';
import { AckedPublisher } from './acked-publisher.ts';
import { JsGroupLink } from './js-group-link.ts';
import { isNoMessage, JsPartition, type JsEnv } from './js-partition.ts';
import { mirrorStreamName, streamName, subjectPrefix, topicKey, TOPICS_BUCKET } from './names.ts';
import { PartitionReads } from './partition-reads.ts';
import { PartitionWatches } from './partition-watches.ts';
import { REPLICA_WAIT_MS, settled, withPeersSettled } from './settle.ts';

export interface JetStreamLogStoreOptions {
  /** NATS server URLs (`nats://host:port`), or a connection the caller owns. */
  servers?: string[];
  connection?: NatsConnection;
  defaults?: Partial<TopicConfig>;
  crc?: Crc32c;
  /** Publishes in flight per partition (pipelined, chained by expected last message id). Default 256. */
  maxInFlightPerPartition?: number;
  maxProducersPerPartition?: number;
  /** An append not confirmed within this is refused, retriable. Default 30 s (covers a stream leader election). */
  appendTimeoutMs?: number;
  /** Read positions (a pull consumer each) kept open across the store. Default 256. */
  maxReaders?: number;
  /** JetStream's duplicate window on each stream. Default 2 minutes (JetStream's default). */
  duplicateWindowMs?: number;
  /** How often each partition's first and last sequence are re-read (retention; a backstop for the watch). Default 5 s. */
  refreshIntervalMs?: number;
  log?: JsEnv['log'];
  /** Second region: serve these topics ('*' = all) read-only from mirrors in the connected cluster. */
  mirror?: string[];
  /**
   * How long a refusal of three replicas ("insufficient resources", "no suitable peers") is asked again when
   * three or more servers are routed together: a node may be up without being a JetStream peer yet. After
   * that the catalog and the topics without a replica count take 1, with a warning. Default 15 s.
   */
  replicaWaitMs?: number;
}

interface TopicMeta {
  name: string;
  partitions: number;
  config: Partial<TopicConfig>;
  createdAt: number;
}

interface Topic {
  meta: TopicMeta;
  /** Settles once every partition's tail is read and watched. */
  ready: Promise<void>;
  config: TopicConfig;
  partitions: JsPartition[];
}

const JS_API_TIMEOUT_MS = 15_000;

/**
 * Placement in a cluster, without tags: nats-server keeps a stream's config with an absent tag list, and an
 * update sending `tags: []` differs from it, which 2.9 takes for a move, refused together with a replica
 * change ("can not move and scale a stream in a single update": a topic's replicas could not be changed).
 */
const inCluster = (cluster: string): Placement => ({ cluster }) as Placement;

/** Mirror mode: how often the home region's catalog is re-read. */
const CATALOG_POLL_MS = 1000;
const CATALOG_MISSES_TO_DROP = 5;

const NOOP_LOG = { info() {}, warn() {}, error() {} };

const OPEN_CONCURRENCY = 8;

export class JetStreamLogStore implements LogStore {
  private nc: NatsConnection | null = null;
  private js!: JetStreamClient;
  private jsm!: JetStreamManager;
  private kv!: KV;
  private reads!: PartitionReads;
  private env!: JsEnv;
  private readonly defaults: TopicConfig;
  private readonly topics = new Map<string, Topic>();
  private readonly attaching = new Map<string, Promise<Topic>>();
  private readonly listeners = new Set<(topic: string, partition: number, hw: number) => void>();
  private watches!: PartitionWatches;
  private readonly log: JsEnv['log'];
  private clusterReplicas = 1;
  private catalogWatch: { stop(): void } | null = null;
  private refreshTimer: NodeJS.Timeout | null = null;
  private state: 'new' | 'open' | 'closed' = 'new';
  /** Mirror mode: this store's region (the connected server's cluster), null in a writable store. */
  private region: string | null = null;
  /** The cluster this store's streams are placed in (unset on a single server). */
  private placement: Placement | undefined;
  /** Group coordination between the hubs of this cluster (none in a read-only region). */
  private link: JsGroupLink | null = null;
  private publisher: AckedPublisher | null = null;

  constructor(private readonly opts: JetStreamLogStoreOptions) {
    this.defaults = { ...DEFAULT_TOPIC_CONFIG, ...checkConfigOverrides(opts.defaults) };
    this.log = opts.log ?? NOOP_LOG;
  }

  async open(): Promise<void> {
    if (this.state !== 'new') throw new TributaryError('INTERNAL', 'a JetStreamLogStore opens once');
    this.nc = this.opts.connection ?? (await connect({ servers: this.opts.servers, name: 'tributary-hub', maxReconnectAttempts: -1, reconnectTimeWait: 250, noAsyncTraces: true }));
    // JetStream API requests (stream and consumer changes) wait for the meta group: on a busy cluster that takes seconds.
    this.js = this.nc.jetstream({ timeout: JS_API_TIMEOUT_MS });
    this.jsm = await this.nc.jetstreamManager({ timeout: JS_API_TIMEOUT_MS });
    if (this.opts.mirror) {
      this.region = this.nc.info?.cluster ?? null;
      if (!this.region) throw new TributaryError('BAD_CONFIG', 'engineMirror: the NATS server has no cluster name (a region is a cluster joined by a gateway)');
    }
    this.publisher = new AckedPublisher(this.nc);
    this.env = {
      js: this.js,
      jsm: this.jsm,
      publisher: this.publisher,
      crc: this.opts.crc ?? nativeCrc32c,
      now: Date.now,
      hubId: randomUUID(),
      maxInFlight: this.opts.maxInFlightPerPartition ?? 256,
      maxProducersPerPartition: this.opts.maxProducersPerPartition ?? 10_000,
      appendTimeoutMs: this.opts.appendTimeoutMs ?? 30_000,
      log: this.log,
      notifyDurable: (t, p, hw) => {
        for (const l of this.listeners) {
          try {
            l(t, p, hw);
          } catch (err) {
            this.log.error({ err: String(err) }, 'onDurable listener threw');
          }
        }
      },
    };
    this.watches = new PartitionWatches(this.js, this.log, settled);
    this.reads = new PartitionReads(this.js, this.jsm, this.opts.maxReaders ?? 256);
    this.kv = await this.openCatalog();
    // Watch first, then list: a topic created in between is attached by either (attach is idempotent).
    await settled(() => this.watchCatalog());
    const metas = await settled(() => this.readCatalog());
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < metas.length) await this.attach(metas[next++]);
    };
    await Promise.all(Array.from({ length: Math.min(OPEN_CONCURRENCY, metas.length) }, worker));
    if (!this.region) {
      this.link = new JsGroupLink(this.nc, this.env.hubId, this.log);
      await settled(() => this.link!.open(this.clusterReplicas >= 3 ? 3 : 1));
    }
    this.state = 'open';
    const every = this.opts.refreshIntervalMs ?? 5000;
    if (every > 0) {
      this.refreshTimer = setInterval(() => void this.refreshAll(), every);
      this.refreshTimer.unref();
    }
  }

  /** The catalog bucket, replicated like the topics; its creation also tells the cluster's size. */
  private async openCatalog(): Promise<KV> {
    const views = this.js.views;
    if (this.region) {
      // A second region reads the home region's catalog; it never creates one.
      this.clusterReplicas = 3;
      return views.kv(TOPICS_BUCKET, { bindOnly: true });
    }
    const cluster = this.nc!.info?.cluster;
    // In a super-cluster (regions joined by gateways) unplaced streams land in any region: keep them in ours.
    if (cluster) this.placement = inCluster(cluster);
    if (!cluster) {
      this.clusterReplicas = 1;
      return views.kv(TOPICS_BUCKET, { replicas: 1, history: 1 });
    }
    try {
      // A cluster just started, or a node just restarted, refuses three replicas until every peer is current ("peer
      // offline") or while a routed node is not yet a JetStream peer ("no suitable peers for placement"): that says
      // nothing of its size (taken for a small cluster, it made the catalog and every topic R1 on a 3-node cluster).
      // Asked again for replicaWaitMs; an existing catalog (whatever its replicas) is bound as it is.
      const kv = await this.withPeersSettled('the topic catalog', () => views.kv(TOPICS_BUCKET, { replicas: 3, history: 1, ...(this.placement ? { placement: this.placement } : {}) }));
      this.clusterReplicas = 3;
      return kv;
    } catch (err) {
      // A single server (or a cluster of two) cannot hold three replicas.
      if (!/replicas|insufficient|not supported|peers/i.test(String(err))) throw err;
      this.log.warn(
        { err: String(err), servers: this.routedServers() },
        'JetStream refused three replicas: the catalog and topics without a replica count keep 1 (docs/scale-out.md: a catalog made R1)',
      );
      const kv = await views.kv(TOPICS_BUCKET, { replicas: 1, history: 1, ...(this.placement ? { placement: this.placement } : {}) });
      const st = await kv.status();
      this.clusterReplicas = Math.max(1, st.replicas);
      return kv;
    }
  }

  /**
   * Every topic in the catalog, read from the bucket's stream leader: a KV
   * get or keys() may be served by a replica that has not caught up, and a
   * hub must not miss a topic created a moment ago.
   */
  private async readCatalog(): Promise<TopicMeta[]> {
    const out: TopicMeta[] = [];
    // Stream info (answered by the leader) lists the keys; a keys() consumer may sit on a lagging replica.
    const si = await this.jsm.streams.info(`KV_${TOPICS_BUCKET}`, { subjects_filter: `$KV.${TOPICS_BUCKET}.>` } as never);
    for (const subject of Object.keys(si.state.subjects ?? {})) {
      try {
        const m = await this.jsm.streams.getMessage(`KV_${TOPICS_BUCKET}`, { last_by_subj: subject });
        const op = m.header?.get('KV-Operation');
        if (op !== 'DEL' && op !== 'PURGE' && m.data.length > 0) out.push(JSON.parse(new TextDecoder().decode(m.data)) as TopicMeta);
      } catch (err) {
        if (!isNoMessage(err)) throw err;
      }
    }
    return out;
  }

  /**
   * Mirror mode: the catalog lives in the home region, where this region's
   * servers cannot place the watch's consumer; poll it (stream info and
   * direct gets, answered through the gateway) instead.
   */
  private pollCatalog(): void {
    const missing = new Map<string, number>();
    const timer = setInterval(() => {
      void (async () => {
        const metas = await this.readCatalog();
        for (const meta of metas) {
          const t = await this.attaching.get(meta.name);
          if (!t) await this.attach(meta);
          else if (meta.partitions > t.partitions.length) await this.grow(t, meta);
        }
        const names = new Set(metas.map((m) => m.name));
        for (const t of [...this.topics.values()]) {
          // A listing through the gateway can come back short: a topic goes after several polls without it.
          const misses = names.has(t.meta.name) ? 0 : (missing.get(t.meta.name) ?? 0) + 1;
          missing.set(t.meta.name, misses);
          if (misses < CATALOG_MISSES_TO_DROP) continue;
          missing.delete(t.meta.name);
          this.detach(t);
          for (const p of t.partitions) await this.jsm.streams.delete(p.stream).catch(() => false);
        }
      })().catch((err) => this.log.warn({ err: String(err) }, 'topic catalog poll failed'));
    }, CATALOG_POLL_MS);
    timer.unref();
    this.catalogWatch = { stop: () => clearInterval(timer) };
  }

  private async watchCatalog(): Promise<void> {
    if (this.region) return this.pollCatalog();
    const iter = await this.kv.watch({ include: 'updates' as never });
    this.catalogWatch = iter;
    void (async () => {
      for await (const e of iter) {
        try {
          if (e.operation !== 'PUT') {
            const t = [...this.topics.values()].find((x) => topicKey(x.meta.name) === e.key);
            if (t) this.detach(t);
            // A mirror outlives nothing: the home topic is gone, so is this region's copy.
            if (t && this.region) for (const p of t.partitions) await this.jsm.streams.delete(p.stream).catch(() => false);
            continue;
          }
          const meta = e.json<TopicMeta>();
          const t = await this.attaching.get(meta.name);
          if (!t) await this.attach(meta);
          else if (meta.partitions > t.partitions.length || JSON.stringify(meta.config) !== JSON.stringify(t.meta.config)) await this.grow(t, meta);
        } catch (err) {
          this.log.warn({ key: e.key, err: String(err) }, 'topic catalog update not applied');
        }
      }
    })();
  }

  /** Starts serving a topic found in the catalog: tails read, watches started. */
  private async attach(meta: TopicMeta): Promise<Topic | null> {
    const existing = this.attaching.get(meta.name);
    if (existing) return existing;
    if (this.region && !this.mirrors(meta.name)) return null;
    const t: Topic = { meta, ready: Promise.resolve(), config: { ...this.defaults, ...meta.config }, partitions: [] };
    const p = this.grow(t, meta).then(() => {
      if (this.attaching.get(meta.name) === p) this.topics.set(meta.name, t);
      return t;
    });
    this.attaching.set(meta.name, p);
    p.catch(() => this.attaching.delete(meta.name));
    return p;
  }

  /** Opens partitions up to meta.partitions (one grow at a time per topic: the catalog watch and the creator may both ask). */
  private grow(t: Topic, meta: TopicMeta): Promise<void> {
    t.ready = t.ready
      .catch(() => undefined)
      .then(async () => {
        t.meta = meta;
        t.config = { ...this.defaults, ...meta.config };
        for (let p = t.partitions.length; p < meta.partitions; p++) {
          let stream: string | undefined;
          if (this.region) {
            stream = mirrorStreamName(this.region, meta.name, p);
            const cfg = this.mirrorConfig(meta.name, p, t.config);
            await this.ensureStream(cfg).catch(async (err) => {
              // This region's cluster may be smaller than the home one: keep one copy rather than none.
              if (!/no suitable peers|insufficient resources/i.test(String(err)) || cfg.num_replicas === 1) throw err;
              this.log.warn({ stream: cfg.name, replicas: cfg.num_replicas }, "region too small for the topic's replicas: its mirror keeps 1");
              await this.ensureStream({ ...cfg, num_replicas: 1 });
            });
          }
          const part = new JsPartition(meta.name, p, this.env, stream);
          await settled(() => part.refreshTail());
          t.partitions.push(part);
          this.watches.opened(part);
        }
      });
    return t.ready;
  }

  /** A subscription of this hub started (+1) or stopped (-1) following a partition: its watch runs while there is one (partition-watches.ts). */
  interest(topic: string, partition: number, delta: 1 | -1): void {
    const part = this.topics.get(topic)?.partitions[partition];
    this.watches.interest(topic, partition, delta, part);
  }

  private detach(t: Topic): void {
    this.topics.delete(t.meta.name);
    this.attaching.delete(t.meta.name);
    for (const p of t.partitions) {
      this.watches.stop(p);
      p.closed = true;
      this.reads.forget(p.stream);
    }
  }

  private assertOpen(): void {
    if (this.state !== 'open') throw new TributaryError(this.state === 'closed' ? 'SHUTTING_DOWN' : 'NOT_READY', 'the log store is not open');
  }

  private info(t: Topic): TopicInfo {
    const config = { ...t.config };
    if (config.replicas === 0) config.replicas = this.replicasFor(t.config);
    return { name: t.meta.name, partitions: t.partitions.length, config, createdAt: t.meta.createdAt };
  }

  private replicasFor(c: TopicConfig): number {
    return c.replicas > 0 ? c.replicas : this.clusterReplicas >= 3 ? 3 : 1;
  }

  private streamConfig(topic: string, p: number, c: TopicConfig): Partial<StreamConfig> {
    const window = this.opts.duplicateWindowMs ?? 120_000;
    const maxAgeMs = c.retentionMs < 0 ? 0 : c.retentionMs;
    return {
      name: streamName(topic, p),
      subjects: [`${subjectPrefix(topic, p)}.>`],
      retention: RetentionPolicy.Limits,
      storage: StorageType.File,
      discard: DiscardPolicy.Old,
      num_replicas: this.replicasFor(c),
      max_age: maxAgeMs * 1_000_000,
      max_bytes: c.retentionBytes,
      // The window may not exceed max_age.
      duplicate_window: (maxAgeMs > 0 ? Math.min(window, maxAgeMs) : window) * 1_000_000,
      ...(this.placement ? { placement: this.placement } : {}),
    } as Partial<StreamConfig>;
  }

  /** Mirror mode: the topic is listed (internal topics always: the hub's group offsets are one). */
  private mirrors(topic: string): boolean {
    const list = this.opts.mirror ?? [];
    return topic.startsWith('__') || list.includes('*') || list.includes(topic);
  }

  /** A partition's mirror, placed in this region's cluster; the home stream's limits, its own replicas. */
  private mirrorConfig(topic: string, p: number, c: TopicConfig): Partial<StreamConfig> {
    const maxAgeMs = c.retentionMs < 0 ? 0 : c.retentionMs;
    return {
      name: mirrorStreamName(this.region!, topic, p),
      mirror: { name: streamName(topic, p) },
      retention: RetentionPolicy.Limits,
      storage: StorageType.File,
      discard: DiscardPolicy.Old,
      num_replicas: this.replicasFor(c),
      placement: inCluster(this.region!),
      max_age: maxAgeMs * 1_000_000,
      max_bytes: c.retentionBytes,
    } as Partial<StreamConfig>;
  }

  private readOnly(what: string, topic: string): TributaryError {
    return new TributaryError('FORBIDDEN', `${what}: this hub serves region ${this.region}, where topic ${String(topic).slice(0, 80)} is a read-only mirror; write through a hub of its home region`, {
      topic,
      mirror: true,
      region: this.region,
    });
  }

  /** The servers of the connected one's cluster, itself included (its INFO's client URLs; a lone server lists none). */
  private routedServers(): number {
    return this.nc?.info?.connect_urls?.length ?? 1;
  }

  /** Runs a stream's creation, asked again while the cluster lacks peers for a moment (settle.ts). */
  private withPeersSettled<T>(what: string, op: () => Promise<T>): Promise<T> {
    return withPeersSettled({ what, servers: this.routedServers(), waitMs: this.opts.replicaWaitMs ?? REPLICA_WAIT_MS, log: this.log }, op);
  }

  private async ensureStream(cfg: Partial<StreamConfig>): Promise<void> {
    try {
      // A topic created while a node restarts waits for it (a moment) instead of failing.
      await this.withPeersSettled(`stream ${cfg.name}`, () => this.jsm.streams.add(cfg));
    } catch (err) {
      if (!/already in use|exists/i.test(String(err))) throw err;
      await this.jsm.streams.update(cfg.name!, cfg);
    }
  }

  listTopics(): TopicInfo[] {
    return [...this.topics.values()].map((t) => this.info(t));
  }

  getTopic(name: string): TopicInfo | undefined {
    const t = this.topics.get(name);
    return t && this.info(t);
  }

  async createTopic(name: string, partitions: number, config?: Partial<TopicConfig>): Promise<TopicInfo> {
    this.assertOpen();
    if (this.region) throw this.readOnly('create topic', name);
    assertTopicName(name);
    const n = checkPartitions(partitions);
    const overrides = checkConfigOverrides(config);
    if (this.topics.has(name) || this.attaching.has(name)) throw new TributaryError('TOPIC_EXISTS', `topic ${name} already exists`);
    const merged = { ...this.defaults, ...overrides };
    if (merged.replicas > this.clusterReplicas && this.clusterReplicas < 3) throw new TributaryError('BAD_CONFIG', `replicas ${merged.replicas}: the JetStream cluster holds ${this.clusterReplicas}`);
    for (let p = 0; p < n; p++) await this.ensureStream(this.streamConfig(name, p, merged));
    const meta: TopicMeta = { name, partitions: n, config: overrides, createdAt: Date.now() };
    try {
      await this.kv.create(topicKey(name), JSON.stringify(meta));
    } catch (err) {
      if (/wrong last sequence|exists/i.test(String(err))) throw new TributaryError('TOPIC_EXISTS', `topic ${name} already exists`);
      throw err;
    }
    return this.info((await this.attach(meta))!);
  }

  async updateTopic(name: string, change: { partitions?: number; config?: Partial<TopicConfig> }): Promise<TopicInfo> {
    this.assertOpen();
    if (this.region) throw this.readOnly('update topic', name);
    const t = this.topic(name);
    const overrides = checkConfigOverrides(change.config);
    const meta: TopicMeta = { ...t.meta, config: { ...t.meta.config, ...overrides } };
    if (change.partitions !== undefined) {
      const n = checkPartitions(change.partitions);
      if (n < t.partitions.length) throw new TributaryError('BAD_CONFIG', `topic ${name} has ${t.partitions.length} partitions; partitions never shrink`);
      meta.partitions = n;
    }
    const merged = { ...this.defaults, ...meta.config };
    for (let p = 0; p < meta.partitions; p++) await this.ensureStream(this.streamConfig(name, p, merged));
    await this.kv.put(topicKey(name), JSON.stringify(meta));
    await this.grow(t, meta);
    return this.info(t);
  }

  async deleteTopic(name: string): Promise<void> {
    this.assertOpen();
    if (this.region) throw this.readOnly('delete topic', name);
    const t = this.topic(name);
    await this.kv.delete(topicKey(name));
    this.detach(t);
    for (const p of t.partitions) await this.jsm.streams.delete(p.stream).catch(() => false);
  }

  private topic(name: string): Topic {
    const t = this.topics.get(name);
    if (!t) throw new TributaryError('UNKNOWN_TOPIC', `unknown topic ${String(name).slice(0, 80)}`, { topic: name });
    return t;
  }

  private partition(topic: string, partition: number): JsPartition {
    const t = this.topic(topic);
    const p = t.partitions[partition];
    if (!p || !Number.isInteger(partition)) throw new TributaryError('BAD_PARTITION', `topic ${topic} has no partition ${partition}`, { topic, partitions: t.partitions.length });
    return p;
  }

  append(topic: string, partition: number, batch: Uint8Array): Promise<AppendResult> {
    try {
      this.assertOpen();
      const p = this.partition(topic, partition);
      if (this.region) throw this.readOnly('produce', topic);
      return p.append(batch);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  lastSequence(topic: string, partition: number, producerId: string): number {
    return this.partition(topic, partition).lastSequence(producerId);
  }

  async read(topic: string, partition: number, offset: number, maxBytes: number): Promise<ReadResult> {
    this.assertOpen();
    const p = this.partition(topic, partition);
    // Unwatched, the tail this hub knows may be behind other hubs' appends: look before answering "nothing more" or out of range.
    if (!p.watch?.iter && offset >= p.logEnd) await p.refreshTail();
    return this.reads.read(p, offset, maxBytes);
  }

  async offsetForTimestamp(topic: string, partition: number, timestampMs: number): Promise<number> {
    this.assertOpen();
    return this.reads.offsetForTimestamp(this.partition(topic, partition), timestampMs);
  }

  offsets(topic: string, partition: number): PartitionOffsets {
    return this.partition(topic, partition).offsets();
  }

  onDurable(listener: (topic: string, partition: number, highWatermark: number) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Re-reads every partition's first sequence and size (retention runs in the servers). */
  async refreshAll(): Promise<void> {
    for (const t of [...this.topics.values()]) {
      for (const p of t.partitions) {
        if (this.state !== 'open') return;
        await p.refreshTail().catch((err) => this.log.warn({ stream: p.stream, err: String(err) }, 'partition refresh failed'));
      }
    }
  }

  groupLink(): GroupLink | null {
    return this.link;
  }

  async close(): Promise<void> {
    if (this.state === 'closed') return;
    await this.link?.close().catch(() => undefined);
    const wasOpen = this.state === 'open';
    this.state = 'closed';
    if (this.refreshTimer) clearInterval(this.refreshTimer);
    this.refreshTimer = null;
    this.watches?.close();
    this.catalogWatch?.stop();
    if (wasOpen) await Promise.all([...this.topics.values()].flatMap((t) => t.partitions.map((p) => p.close())));
    for (const t of [...this.topics.values()]) this.detach(t);
    this.reads?.close();
    this.publisher?.close();
    if (this.nc && !this.opts.connection) await this.nc.drain().catch(() => this.nc?.close());
    this.nc = null;
  }
}
