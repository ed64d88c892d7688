/**
 * The broker: topics, produce, subscriptions and reads over one LogStore.
 * It knows nothing of sockets; the transport hands it typed requests and a
 * sink per connection.
 */
import type { Crc32c } from '../../protocol/crc32c.ts';
import type { LogStore, StorageProblem } from '../storage/log-store.ts';
import type { HubMetrics } from '../metrics.ts';
import { fetchRecords, type FetchRequest, type FetchResult } from './fetch.ts';
import type { ProduceBatchesFrame } from '../../protocol/frames.ts';
import { InFlightAppends, Producer, type ProduceRequest, type ProduceResult } from './produce.ts';
import { Subscriptions } from './subscriptions.ts';
import { GroupCoordinator, type GroupSettings } from './group-coordinator.ts';
import { GroupAdmin } from './group-admin.ts';
import { Topics } from './topics.ts';

export interface BrokerSettings {
  autoCreateTopics: boolean;
  defaultPartitions: number;
  maxFutureTimestampMs: number;
  subscriptionReadBytes: number;
  crc: Crc32c;
  groups: GroupSettings;
}

export class Broker {
  readonly topics: Topics;
  readonly producer: Producer;
  readonly subscriptions: Subscriptions;
  readonly groups: GroupCoordinator;
  readonly groupAdmin: GroupAdmin;
  readonly inFlight = new InFlightAppends();

  constructor(
    readonly store: LogStore,
    settings: BrokerSettings,
    private readonly metrics: HubMetrics,
  ) {
    this.topics = new Topics(store, settings);
    this.producer = new Producer(store, this.topics, settings, this.inFlight);
    this.subscriptions = new Subscriptions(store, this.topics, settings.subscriptionReadBytes, (bytes) => {
      metrics.deliveredBatchesBytes.inc(bytes);
      metrics.deliveredFrames.inc();
    });
    this.groups = new GroupCoordinator(store, this.topics, this.subscriptions, settings.groups, settings.crc, { rebalance: (g) => metrics.groupRebalances.inc({ group: g }) });
    this.groupAdmin = new GroupAdmin(this.groups, store);
    metrics.watchGroups(this.groupAdmin);
  }

  /** After the store has recovered: replay committed offsets, start session timers. */
  async open(): Promise<void> {
    await this.groups.open();
  }

  /** Appends a produce request in either form: records (the hub encodes) or producer-encoded batches. */
  async produce(req: ProduceRequest | Pick<ProduceBatchesFrame, 'topic' | 'batches'>): Promise<ProduceResult> {
    const started = performance.now();
    const res = req.batches ? await this.producer.produceBatches(req) : await this.producer.produce(req);
    const m = this.metrics;
    m.produceLatency.observe((performance.now() - started) / 1000);
    m.produceRequests.inc();
    if (res.appendedRecords) m.producedRecords.inc(res.appendedRecords);
    if (res.appendedBytes) m.producedBytes.inc(res.appendedBytes);
    if (res.duplicateRecords) m.duplicateRecords.inc(res.duplicateRecords);
    return res;
  }

  async fetch(req: FetchRequest): Promise<FetchResult> {
    const res = await fetchRecords(this.store, this.topics, req);
    this.metrics.httpReadRecords.inc(res.records.length);
    return res;
  }

  /** Bytes on disk over every partition (for /metrics). */
  storageBytes(): number {
    let total = 0;
    for (const t of this.store.listTopics()) for (let p = 0; p < t.partitions; p++) total += this.store.offsets(t.name, p).bytes;
    return total;
  }

  /** Damage the storage engine found in its files (for /healthz). */
  storageProblems(): StorageProblem[] {
    return this.store.storageProblems?.() ?? [];
  }

  /** Stop following the log; in-flight appends are awaited by the hub. */
  close(): void {
    this.groups.close();
    this.subscriptions.close();
  }
}
