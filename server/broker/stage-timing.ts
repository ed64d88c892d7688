/**
 * Where a produced record's time goes inside the hub, for finding latency
 * tails: a debug facility, off unless TRIBUTARY_DEBUG_STAGES names a file.
 * Then the broker stamps each produce request when it starts, when its
 * appends are durable, and each records frame when it is handed to the
 * transport, and at exit writes per-stage percentiles there as JSON:
 *
 *   produce→durable   produce() called → every append resolved (the
 *                     partition writer's queue, the group commit's write:
 *                     through O_DSYNC with fsync always, storage/durable-log.ts)
 *   notified→sent     the engine woke the subscription (new high watermark)
 *                     → its read returned and the frame went to the transport
 *   produce→sent      produce() called → the frame holding the request's
 *                     batch went to a subscriber (per batch)
 *   group write       one group commit's O_DSYNC write alone (per group,
 *                     storage/durable-log.ts): produce→durable less this is
 *                     the wait for the partition's writer and the promise hops
 *
 * Off, every hook is one null check. Samples are kept raw up to a bound
 * per stage (a run at 10,000 events/s for a minute fits).
 */
import fs from 'node:fs';
import { batchSizeAt } from '../../protocol/batch.ts';
import { groupWriteTimes } from '../storage/durable-log.ts';

const MAX_SAMPLES_PER_STAGE = 1_000_000;
/** Append stamps waiting for their delivery per partition; past it the oldest are forgotten (no subscriber, say). */
const MAX_PENDING = 100_000;

type Stage = 'produce→durable' | 'notified→sent' | 'produce→sent';

class StageTiming {
  private readonly samples = new Map<Stage, number[]>();
  /**
   * Per `topic/partition`, the start times of the batches appended there, in
   * append order: one writer per partition assigns offsets in that order, so
   * the k-th batch sent is the k-th appended (a producer's retry that is
   * answered as a duplicate would shift this: the debug runs have none).
   */
  private readonly appended = new Map<string, number[]>();

  constructor(private readonly file: string) {
    process.once('exit', () => this.write());
  }

  now(): number {
    return performance.now();
  }

  record(stage: Stage, ms: number): void {
    let list = this.samples.get(stage);
    if (!list) this.samples.set(stage, (list = []));
    if (list.length < MAX_SAMPLES_PER_STAGE) list.push(ms);
  }

  /** A produce request that started at `startedAt` hands one batch for `partition` to the engine. */
  appending(topic: string, partition: number, startedAt: number): void {
    const key = `${topic}/${partition}`;
    let list = this.appended.get(key);
    if (!list) this.appended.set(key, (list = []));
    if (list.length >= MAX_PENDING) list.shift();
    list.push(startedAt);
  }

  /** A produce request that started at `startedAt` is durable everywhere it went. */
  durable(startedAt: number): void {
    this.record('produce→durable', this.now() - startedAt);
  }

  /** A records frame (`bytes`: whole batches) went to the transport; `wokeAt`: when the engine last woke the subscription. */
  sent(topic: string, partition: number, bytes: Uint8Array, wokeAt: number): void {
    const t = this.now();
    if (wokeAt > 0) this.record('notified→sent', t - wokeAt);
    const list = this.appended.get(`${topic}/${partition}`);
    if (!list) return;
    for (let pos = 0; pos < bytes.length && list.length; pos += batchSizeAt(bytes, pos)) this.record('produce→sent', t - list.shift()!);
  }

  private write(): void {
    const out: Record<string, unknown> = {};
    const stages: Array<[string, number[]]> = [...this.samples];
    if (groupWriteTimes?.length) stages.push(['group write', groupWriteTimes]);
    for (const [stage, list] of stages) {
      const sorted = Float64Array.from(list).sort();
      const at = (q: number) => Math.round(sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] * 1000) / 1000;
      out[stage] = { count: sorted.length, p50Ms: at(0.5), p99Ms: at(0.99), p999Ms: at(0.999), maxMs: at(1) };
    }
    try {
      fs.writeFileSync(this.file, JSON.stringify(out, null, 2));
    } catch {
      // a debug aid: nothing to do if its file cannot be written
    }
  }
}

/** The hub's stage timing, or null (the normal case). */
export const stageTiming: StageTiming | null = process.env.TRIBUTARY_DEBUG_STAGES ? new StageTiming(process.env.TRIBUTARY_DEBUG_STAGES) : null;
