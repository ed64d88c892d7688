/**
 * Creating subscriptions (start positions resolved per partition) and
 * routing the engine's high-watermark notifications to the subscriptions
 * of that topic. Also follows topic changes: partitions added to a topic
 * join the subscriptions that follow all of its partitions; a deleted topic
 * ends its subscriptions.
 */
import { TributaryError } from '../../protocol/errors.ts';
import type { StartPosition } from '../../protocol/frames.ts';
import type { LogStore, TopicInfo } from '../storage/log-store.ts';
import { Subscription, type OutOfRangePolicy, type SubscriptionSink } from './subscription.ts';
import type { Topics } from './topics.ts';

export interface SubscribeRequest {
  id: number;
  topic: string;
  from: StartPosition;
  partitions?: number[];
  /** Next offset per partition (resume), overriding `from`. */
  positions?: Record<string, number>;
  credit?: number;
  onOutOfRange?: OutOfRangePolicy;
}

export interface StartedPartition {
  p: number;
  /** The first offset that will be delivered. */
  offset: number;
  hw: number;
}

export class Subscriptions {
  private readonly byTopic = new Map<string, Set<Subscription>>();
  private readonly unlisten: Array<() => void> = [];

  constructor(
    private readonly store: LogStore,
    private readonly topics: Topics,
    private readonly readBytes: number,
    private readonly onSent: (bytes: number) => void,
  ) {
    this.unlisten.push(store.onDurable((topic, partition, hw) => this.onDurable(topic, partition, hw)));
    this.unlisten.push(topics.onChange((topic, info) => this.onTopicChange(topic, info)));
  }

  get size(): number {
    let n = 0;
    for (const s of this.byTopic.values()) n += s.size;
    return n;
  }

  /**
   * Resolves start offsets and returns a subscription that is registered but
   * not yet delivering: the caller answers the request, then calls start().
   */
  async subscribe(req: SubscribeRequest, sink: SubscriptionSink): Promise<{ subscription: Subscription; started: StartedPartition[] }> {
    const info = await this.topics.ensure(req.topic);
    const parts = req.partitions ?? Array.from({ length: info.partitions }, (_, i) => i);
    for (const p of parts) {
      if (p >= info.partitions) throw new TributaryError('BAD_PARTITION', `partition ${p} does not exist; ${req.topic} has ${info.partitions}`, { partitions: info.partitions });
    }
    if (req.positions) {
      for (const p of Object.keys(req.positions)) {
        if (!parts.includes(Number(p))) throw new TributaryError('BAD_PARTITION', `positions names partition ${p}, which this subscription does not cover`);
      }
    }
    const policy = req.onOutOfRange ?? 'error';
    const starts = await Promise.all(parts.map((p) => this.startOffset(req, p, policy)));
    const subscription = new Subscription(
      this.store,
      sink,
      { id: req.id, topic: req.topic, partitions: req.partitions, credit: req.credit, onOutOfRange: policy, readBytes: this.readBytes },
      this.onSent,
    );
    const started: StartedPartition[] = [];
    for (let i = 0; i < parts.length; i++) {
      subscription.addPartition(parts[i], starts[i]);
      started.push({ p: parts[i], offset: starts[i], hw: this.store.offsets(req.topic, parts[i]).highWatermark });
    }
    let set = this.byTopic.get(req.topic);
    if (!set) this.byTopic.set(req.topic, (set = new Set()));
    set.add(subscription);
    return { subscription, started };
  }

  /**
   * A subscription that starts with no partitions and is registered for the
   * engine's notifications: a group member's, whose partitions the group
   * coordinator adds and removes.
   */
  createEmpty(id: number, topic: string, credit: number | undefined, sink: SubscriptionSink): Subscription {
    const subscription = new Subscription(this.store, sink, { id, topic, partitions: [], credit, onOutOfRange: 'earliest', readBytes: this.readBytes }, this.onSent);
    let set = this.byTopic.get(topic);
    if (!set) this.byTopic.set(topic, (set = new Set()));
    set.add(subscription);
    return subscription;
  }

  remove(subscription: Subscription): void {
    subscription.close();
    const set = this.byTopic.get(subscription.topic);
    if (!set) return;
    set.delete(subscription);
    if (set.size === 0) this.byTopic.delete(subscription.topic);
  }

  close(): void {
    for (const u of this.unlisten) u();
    for (const set of this.byTopic.values()) for (const s of set) s.close();
    this.byTopic.clear();
  }

  private async startOffset(req: SubscribeRequest, p: number, policy: OutOfRangePolicy): Promise<number> {
    const o = this.store.offsets(req.topic, p);
    const pos = req.positions?.[String(p)];
    const from: StartPosition = pos !== undefined ? { offset: pos } : req.from;
    if (from === 'earliest') return o.earliest;
    if (from === 'latest') return o.highWatermark;
    if ('timestamp' in from) return this.store.offsetForTimestamp(req.topic, p, from.timestamp);
    const offset = from.offset;
    if (offset >= o.earliest && offset <= o.logEnd) return offset;
    if (policy === 'earliest') return o.earliest;
    if (policy === 'latest') return o.highWatermark;
    throw new TributaryError('OFFSET_OUT_OF_RANGE', `offset ${offset} of ${req.topic}/${p} is outside [${o.earliest}, ${o.logEnd}]`, {
      partition: p,
      earliest: o.earliest,
      logEnd: o.logEnd,
    });
  }

  private onDurable(topic: string, partition: number, hw: number): void {
    const set = this.byTopic.get(topic);
    if (!set) return;
    for (const s of set) s.onHighWatermark(partition, hw);
  }

  private onTopicChange(topic: string, info: TopicInfo | undefined): void {
    const set = this.byTopic.get(topic);
    if (!set) return;
    if (!info) {
      for (const s of [...set]) {
        s.onTopicDeleted();
        this.remove(s);
      }
      return;
    }
    for (const s of set) {
      if (!s.followsAllPartitions) continue;
      // New partitions start at their beginning: nothing produced to them is missed.
      for (let p = 0; p < info.partitions; p++) s.addPartition(p, this.store.offsets(topic, p).earliest);
    }
  }
}
