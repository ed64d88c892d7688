/**
 * A stream task's own CPU per input event, without a hub: stored batches of
 * the bench's input are read as a lazyValues subscription reads them
 * (protocol's readLazyRecords) and run through Task.processBatch, whose
 * lanes write every output into batch bytes and seal them (their produce
 * calls answer at once). What the app's processing costs whatever else the
 * machine runs: the end-to-end rows add the socket, the hub and the waits.
 *
 *   node --import tsx bench/streams.ts --only task
 */
import { encodeBatch, readLazyRecords } from '../protocol/index.ts';
import { Slots } from '../streams/output-lanes.ts';
import { Task } from '../streams/task.ts';
import { stream, type StreamApp, type StreamsClient } from '../streams/index.ts';
import { zeroMetrics, type StreamMetrics } from '../streams/nodes.ts';
import { batchCrc32c } from '../web-client/runtime.ts';
import { LazyRecord } from '../web-client/consumer.ts';
import type { InputEvent } from '../harness/stream-input.ts';
import { threadCpuUs } from './lib/proc-cpu.ts';

/** Records per stored batch, as the bench's preload writes them (STREAMS_TASK_BATCH overrides). */
const RECORDS_PER_BATCH = Number(process.env.STREAMS_TASK_BATCH) || 10_000;
/** Rounds per pipeline; the first ones warm the JIT up and are not counted. */
const ROUNDS = 8;
const WARM_UP_ROUNDS = 3;

const answered: StreamsClient = {
  subscribe: () => {
    throw new Error('not used');
  },
  produceBatches: async (_topic, partition) => ({ partition, lastOffset: 0, duplicate: false }),
};

/** Median µs of CPU per event over the warm rounds of one pipeline, and the first (cold) round's. */
export async function taskCpuPerEvent(input: InputEvent[], build: (app: StreamApp) => void): Promise<{ warmUs: number; coldUs: number; threadUs: number }> {
  const crc = await batchCrc32c();
  const encoder = new TextEncoder();
  const batches: Uint8Array[] = [];
  for (let s = 0; s < input.length; s += RECORDS_PER_BATCH) {
    const records = input.slice(s, s + RECORDS_PER_BATCH).map((e) => ({ key: e.key, value: encoder.encode(JSON.stringify(e.value)), encoding: 'json' as const, timestamp: e.timestamp, headers: [] }));
    batches.push(encodeBatch({ producerId: 'input', baseSequence: s, baseOffset: s, records }, crc));
  }
  const rounds: number[] = [];
  const threadRounds: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    const app = stream(answered, { applicationId: 'bench-task' });
    build(app);
    const root = [...app.topology.roots.values()][0];
    const metrics: StreamMetrics = zeroMetrics();
    const settings = {
      applicationId: 'bench-task',
      instanceId: 'i',
      changelogTopic: 'changelog',
      maxPendingRecords: 1e9,
      maxBatchRecords: 10_000,
      minBatchRecords: 1_000,
      requestsPerLane: 1e9,
      restoreTimeoutMs: 1_000,
      produceTimeoutMs: 1_000,
    };
    const env = { client: answered as never, metrics, partitionCount: () => 4, lookup: () => undefined, slots: new Slots(1e9), commit: async () => undefined, crc };
    const task = new Task(root, 0, settings, env);
    const c0 = process.cpuUsage();
    const th0 = threadCpuUs();
    for (const b of batches) {
      const records = readLazyRecords(b, 0, (offset, ts, key, headers, values, i) => new LazyRecord(root.topic, 0, offset, ts, key, headers, values, i), crc);
      void task.processBatch(records);
    }
    const c = process.cpuUsage(c0);
    rounds.push((c.user + c.system) / input.length);
    threadRounds.push((threadCpuUs() - th0) / input.length);
    await new Promise((r) => setImmediate(r)); // the lanes' answered produce calls settle between rounds
  }
  const warm = rounds.slice(WARM_UP_ROUNDS).sort((a, b) => a - b);
  const warmThread = threadRounds.slice(WARM_UP_ROUNDS).sort((a, b) => a - b);
  return { warmUs: warm[warm.length >> 1], coldUs: rounds[0], threadUs: warmThread[warmThread.length >> 1] };
}
