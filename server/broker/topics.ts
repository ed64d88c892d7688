/**
 * Topic administration over the LogStore: validated create/describe/change/
 * delete, auto-creation on first use, and change notifications for
 * subscriptions that follow "all partitions" of a topic.
 */
import { TributaryError } from '../../protocol/errors.ts';
import { LIMITS, assertTopicName } from '../../protocol/limits.ts';
import type { LogStore, PartitionOffsets, TopicConfig, TopicInfo } from '../storage/log-store.ts';

export interface TopicSettings {
  autoCreateTopics: boolean;
  defaultPartitions: number;
}

interface PartitionDescription extends PartitionOffsets {
  partition: number;
}

export interface TopicDescription extends TopicInfo {
  offsets: PartitionDescription[];
}

const CONFIG_KEYS: Record<keyof TopicConfig, 'int' | 'cleanup' | 'fsync'> = {
  retentionMs: 'int',
  retentionBytes: 'int',
  cleanupPolicy: 'cleanup',
  deleteRetentionMs: 'int',
  fsync: 'fsync',
  fsyncIntervalMs: 'int',
  segmentBytes: 'int',
  segmentMs: 'int',
  replicas: 'int',
};

/** Checks a topic config patch from outside (HTTP body): known keys, right types. The engine checks ranges. */
function parseTopicConfig(x: unknown): Partial<TopicConfig> {
  if (x === undefined || x === null) return {};
  if (typeof x !== 'object' || Array.isArray(x)) throw new TributaryError('BAD_CONFIG', 'config must be an object');
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(x)) {
    const kind = (CONFIG_KEYS as Record<string, string>)[k];
    if (!kind) throw new TributaryError('BAD_CONFIG', `unknown topic config key ${JSON.stringify(k)}; known: ${Object.keys(CONFIG_KEYS).join(', ')}`);
    if (kind === 'int' && !(typeof v === 'number' && Number.isSafeInteger(v) && v >= -1)) throw new TributaryError('BAD_CONFIG', `${k} must be an integer >= -1`);
    if (kind === 'cleanup' && v !== 'delete' && v !== 'compact') throw new TributaryError('BAD_CONFIG', `${k} must be "delete" or "compact"`);
    if (kind === 'fsync' && v !== 'always' && v !== 'interval' && v !== 'never') throw new TributaryError('BAD_CONFIG', `${k} must be "always", "interval" or "never"`);
    out[k] = v;
  }
  return out as Partial<TopicConfig>;
}

function parsePartitionCount(x: unknown): number {
  if (typeof x !== 'number' || !Number.isInteger(x) || x < 1 || x > LIMITS.maxPartitions) {
    throw new TributaryError('BAD_CONFIG', `partitions must be an integer in [1, ${LIMITS.maxPartitions}]`);
  }
  return x;
}

export type TopicChangeListener = (topic: string, info: TopicInfo | undefined) => void;

export class Topics {
  private readonly listeners = new Set<TopicChangeListener>();
  /** Auto-creations in progress, so concurrent first produces create once. */
  private readonly creating = new Map<string, Promise<TopicInfo>>();

  constructor(
    private readonly store: LogStore,
    private readonly settings: TopicSettings,
  ) {}

  list(): TopicInfo[] {
    return this.store.listTopics();
  }

  get(name: string): TopicInfo | undefined {
    return this.store.getTopic(name);
  }

  /** The topic, or UNKNOWN_TOPIC. */
  require(name: string): TopicInfo {
    const t = this.store.getTopic(name);
    if (!t) throw new TributaryError('UNKNOWN_TOPIC', `unknown topic ${JSON.stringify(name)}`);
    return t;
  }

  describe(name: string): TopicDescription {
    const t = this.require(name);
    const offsets: PartitionDescription[] = [];
    for (let p = 0; p < t.partitions; p++) offsets.push({ partition: p, ...this.store.offsets(name, p) });
    return { ...t, offsets };
  }

  async create(name: unknown, partitions: unknown, config: unknown): Promise<TopicInfo> {
    const topic = assertTopicName(name);
    const n = partitions === undefined || partitions === null ? this.settings.defaultPartitions : parsePartitionCount(partitions);
    const pending = this.store.createTopic(topic, n, parseTopicConfig(config)).then((info) => {
      this.emit(topic, info);
      return info;
    });
    // An auto-create that arrives meanwhile waits for this one instead of failing on TOPIC_EXISTS.
    if (!this.creating.has(topic)) this.track(topic, pending);
    return pending;
  }

  /** Returns the new info and warnings for the operator (keys that now map anew). */
  async update(name: string, change: { partitions?: unknown; config?: unknown }): Promise<{ info: TopicInfo; warnings: string[] }> {
    const before = this.require(name);
    const patch: { partitions?: number; config?: Partial<TopicConfig> } = {};
    if (change.partitions !== undefined && change.partitions !== null) {
      patch.partitions = parsePartitionCount(change.partitions);
      if (patch.partitions < before.partitions) throw new TributaryError('BAD_CONFIG', `partitions can only grow (now ${before.partitions})`);
    }
    if (change.config !== undefined) patch.config = parseTopicConfig(change.config);
    const info = await this.store.updateTopic(name, patch);
    const warnings: string[] = [];
    if (info.partitions > before.partitions) {
      warnings.push(
        `partitions grew from ${before.partitions} to ${info.partitions}: keyed records now map to different partitions, so per-key order holds only within records produced after the change`,
      );
    }
    this.emit(name, info);
    return { info, warnings };
  }

  async delete(name: string): Promise<void> {
    this.require(name);
    await this.store.deleteTopic(name);
    this.emit(name, undefined);
  }

  /**
   * The topic, created with the default partition count when it is missing
   * and auto-creation is on; UNKNOWN_TOPIC otherwise.
   */
  async ensure(name: string): Promise<TopicInfo> {
    const t = this.store.getTopic(name);
    if (t) return t;
    if (!this.settings.autoCreateTopics) throw new TributaryError('UNKNOWN_TOPIC', `unknown topic ${JSON.stringify(name)} (auto-creation is off)`);
    const under = this.creating.get(name);
    if (under) {
      // An explicit create (or another auto-create) of it is under way: its topic is the one to use. If it
      // failed (e.g. a config the hub refused), create with the defaults as if it had not been asked.
      try {
        return await under;
      } catch {
        const now = this.store.getTopic(name);
        if (now) return now;
        if (this.creating.get(name) === under) this.creating.delete(name);
        return this.ensure(name);
      }
    }
    const pending = this.store.createTopic(name, this.settings.defaultPartitions).then(
      (info) => {
        this.emit(name, info);
        return info;
      },
      (err: unknown) => {
        // Lost a race with a create this hub did not see start (another hub on a shared engine): the
        // topic exists, use it.
        const now = this.store.getTopic(name);
        if (now) return now;
        throw err;
      },
    );
    this.track(name, pending);
    return pending;
  }

  /** Remembers a create under way until it settles. */
  private track(name: string, pending: Promise<TopicInfo>): void {
    this.creating.set(name, pending);
    pending
      .finally(() => {
        if (this.creating.get(name) === pending) this.creating.delete(name);
      })
      .catch(() => undefined);
  }

  onChange(listener: TopicChangeListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private emit(topic: string, info: TopicInfo | undefined): void {
    for (const l of this.listeners) l(topic, info);
  }
}
