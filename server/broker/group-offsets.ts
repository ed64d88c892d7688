/**
 * Committed offsets of every group, kept as Kafka keeps them: records in an
 * internal compacted topic, `__consumer_offsets`, written through the
 * LogStore interface (so any engine, JetStream included, stores them), key
 * `group\u0000topic\u0000partition`, value the offset as JSON text (a
 * tombstone deletes it). Replayed into memory at start-up; reads never touch
 * the log.
 *
 * A commit answers once its batch is durable (the topic is fsync=always, so
 * concurrent commits share fdatasyncs). Commits of one key are applied to
 * the map in the order they were issued, whatever order appends resolve in.
 */
import { decodeBatches, encodeBatch } from '../../protocol/batch.ts';
import { TributaryError } from '../../protocol/errors.ts';
import type { Crc32c } from '../../protocol/crc32c.ts';
import type { EncodedRecord } from '../../protocol/record.ts';
import type { LogStore } from '../storage/log-store.ts';

const OFFSETS_TOPIC = '__consumer_offsets';
/** Internal topics (this prefix) are hidden from listings and cannot be produced to by clients. */
const INTERNAL_TOPIC_PREFIX = '__';
/** Bytes read per step while replaying. */
const REPLAY_READ_BYTES = 1024 * 1024;
/** A shared engine's offsets topic, created by another hub a moment ago, is attached here within this. */
const ATTACH_WAIT_MS = 30_000;
const ATTACH_POLL_MS = 50;

export const isInternalTopic = (name: string): boolean => name.startsWith(INTERNAL_TOPIC_PREFIX);

const SEP = '\u0000';
const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder();

/** group → topic → partition → committed offset */
type OffsetMap = Map<string, Map<string, Map<number, number>>>;

export class GroupOffsets {
  private readonly committed: OffsetMap = new Map();
  /** Issue order per key, so a slower append never overwrites a newer commit. */
  private readonly issued = new Map<string, number>();
  private readonly applied = new Map<string, number>();
  private seq = 0;
  /** The offsets topic is applied up to here. */
  private replayed = 0;

  constructor(
    private readonly store: LogStore,
    private readonly crc: Crc32c,
  ) {}

  /** Creates the topic when missing, then replays it. */
  async open(): Promise<void> {
    if (!this.store.getTopic(OFFSETS_TOPIC)) {
      try {
        // Compacted: only the newest offset per key survives; keep forever (retention would forget commits).
        await this.store.createTopic(OFFSETS_TOPIC, 1, { cleanupPolicy: 'compact', retentionMs: -1, retentionBytes: -1, fsync: 'always' });
      } catch (err) {
        // Another hub over the same engine created it meanwhile (hubs started together): this one has it once
        // its catalog watch attached it. Failing here ended the hub's start.
        if (!(err instanceof TributaryError && err.code === 'TOPIC_EXISTS')) throw err;
        const until = Date.now() + ATTACH_WAIT_MS;
        while (!this.store.getTopic(OFFSETS_TOPIC)) {
          if (Date.now() > until) throw new TributaryError('STORAGE_UNAVAILABLE', `${OFFSETS_TOPIC} exists in the engine but was not attached within ${ATTACH_WAIT_MS} ms`);
          await new Promise((r) => setTimeout(r, ATTACH_POLL_MS));
        }
      }
    }
    await this.catchUp();
  }

  /**
   * Applies what was committed since the last replay. A hub that becomes the
   * group coordinator of a shared engine calls it: commits made through the
   * previous coordinator are in the log, not yet in this hub's map.
   */
  async catchUp(): Promise<void> {
    const { earliest } = this.store.offsets(OFFSETS_TOPIC, 0);
    let next = Math.max(earliest, this.replayed);
    // Until a read comes back empty, not up to the high watermark known now: an engine shared by several hubs
    // learns of their appends on a read at its tail.
    for (;;) {
      const res = await this.store.read(OFFSETS_TOPIC, 0, next, REPLAY_READ_BYTES);
      if (res.bytes.length === 0) {
        if (res.nextOffset <= next) break;
        next = res.nextOffset;
        continue;
      }
      for (const r of decodeBatches(res.bytes, next, true)) {
        if (typeof r.key !== 'string') continue;
        const [group, topic, p] = r.key.split(SEP);
        if (group === undefined || topic === undefined || p === undefined) continue;
        this.apply(group, topic, Number(p), r.value === null ? null : Number(textDecoder.decode(r.value)));
      }
      next = res.nextOffset;
    }
    this.replayed = next;
  }

  get(group: string, topic: string, partition: number): number | undefined {
    return this.committed.get(group)?.get(topic)?.get(partition);
  }

  /** topic → partition → offset of one group (a live view: do not mutate). */
  ofGroup(group: string): ReadonlyMap<string, ReadonlyMap<number, number>> {
    return this.committed.get(group) ?? new Map();
  }

  groups(): string[] {
    return [...this.committed.keys()];
  }

  /** Durably records `offsets` (null deletes), then applies them. */
  async commit(group: string, topic: string, offsets: ReadonlyArray<readonly [number, number | null]>): Promise<void> {
    const now = Date.now();
    const records: EncodedRecord[] = [];
    const seqs: number[] = [];
    for (const [p, o] of offsets) {
      const key = keyOf(group, topic, p);
      records.push({ key, value: o === null ? null : textEncoder.encode(String(o)), encoding: 'json', headers: [], timestamp: now });
      const s = ++this.seq;
      this.issued.set(key, s);
      seqs.push(s);
    }
    await this.store.append(OFFSETS_TOPIC, 0, encodeBatch({ records }, this.crc));
    for (let i = 0; i < offsets.length; i++) {
      const key = records[i].key as string;
      if ((this.applied.get(key) ?? 0) > seqs[i]) continue;
      this.applied.set(key, seqs[i]);
      this.apply(group, topic, offsets[i][0], offsets[i][1]);
    }
  }

  /** Deletes every offset of a group. */
  async deleteGroup(group: string): Promise<void> {
    const byTopic = this.committed.get(group);
    if (!byTopic) return;
    for (const [topic, parts] of [...byTopic])
      await this.commit(
        group,
        topic,
        [...parts.keys()].map((p) => [p, null] as const),
      );
  }

  private apply(group: string, topic: string, partition: number, offset: number | null): void {
    let byTopic = this.committed.get(group);
    if (offset === null) {
      const parts = byTopic?.get(topic);
      parts?.delete(partition);
      if (parts && parts.size === 0) byTopic!.delete(topic);
      if (byTopic && byTopic.size === 0) this.committed.delete(group);
      return;
    }
    if (!Number.isSafeInteger(offset) || offset < 0) return;
    if (!byTopic) this.committed.set(group, (byTopic = new Map()));
    let parts = byTopic.get(topic);
    if (!parts) byTopic.set(topic, (parts = new Map()));
    parts.set(partition, offset);
  }
}

function keyOf(group: string, topic: string, partition: number): string {
  return `${group}${SEP}${topic}${SEP}${partition}`;
}
