/**
 * Watches of partitions for other hubs' appends: a headers-only ordered
 * consumer from the tail on, whose messages move this hub's high watermark
 * and wake its subscribers (JsPartition.observe).
 *
 * A partition is watched only while a subscription of this hub follows it
 * (LogStore.interest). A watch costs the servers a delivery and this hub a
 * message per append, its own appends included: watching every partition
 * took about a quarter of a hub's produce throughput. Without a watch, a
 * read at the tail re-reads it first (JetStreamLogStore.read) and the
 * periodic refresh moves the high watermark.
 */
import type { ConsumerMessages, JetStreamClient } from 'nats';
import type { JsEnv, JsPartition } from './js-partition.ts';
import { H_OFFSETS, parseOffsetsHeader } from './stored-batch.ts';

export class PartitionWatches {
  /** Subscriptions per partition (topic\0partition). */
  private readonly interested = new Map<string, number>();
  private closed = false;

  constructor(
    private readonly js: JetStreamClient,
    private readonly log: JsEnv['log'],
    /** Retries an operation on a stream a moment old (the store's settle loop). */
    private readonly settled: <T>(op: () => Promise<T>) => Promise<T>,
  ) {}

  /** Counts a subscription in or out; `part` when the partition is open here. */
  interest(topic: string, partition: number, delta: 1 | -1, part: JsPartition | undefined): void {
    const key = `${topic}\u0000${partition}`;
    const n = Math.max(0, (this.interested.get(key) ?? 0) + delta);
    if (n === 0) this.interested.delete(key);
    else this.interested.set(key, n);
    if (!part) return;
    if (n > 0) this.start(part);
    else this.stop(part);
  }

  /** A partition just opened: watched at once if subscriptions were waiting for it. */
  opened(part: JsPartition): void {
    if ((this.interested.get(`${part.topic}\u0000${part.partition}`) ?? 0) > 0) this.start(part);
  }

  start(part: JsPartition): void {
    if (part.watch || part.closed || this.closed) return;
    const w: NonNullable<JsPartition['watch']> = { iter: null, stopped: false };
    part.watch = w;
    // From the tail as it is now, not from where this hub last looked (possibly long ago).
    this.settled(async () => {
      await part.refreshTail();
      return this.consume(part);
    }).then(
      (iter) => {
        if (w.stopped) iter.stop();
        else w.iter = iter;
      },
      (err: unknown) => {
        if (part.watch === w) part.watch = null;
        this.log.warn({ stream: part.stream, err: String(err) }, 'partition watch not started');
      },
    );
  }

  stop(part: JsPartition): void {
    const w = part.watch;
    if (!w) return;
    part.watch = null;
    w.stopped = true;
    w.iter?.stop();
  }

  close(): void {
    this.closed = true;
  }

  private async consume(part: JsPartition): Promise<ConsumerMessages> {
    const c = await this.js.consumers.get(part.stream, { opt_start_seq: part.lastSeq + 1, headers_only: true });
    // Short pulls with heartbeats: a watch whose consumer sat on a node that died notices within seconds and resumes from its cursor.
    const iter = await c.consume({ max_messages: 512, expires: 4000, idle_heartbeat: 1000 });
    void (async () => {
      for await (const m of iter) {
        const ref = parseOffsetsHeader(m.seq, m.headers?.get(H_OFFSETS));
        if (ref) part.observe(ref, m.headers?.get('Nats-Msg-Id') ?? '', Number(m.headers?.get('Nats-Msg-Size') ?? 0));
      }
    })().catch((err) => this.log.warn({ stream: part.stream, err: String(err) }, 'partition watch ended'));
    return iter;
  }
}
