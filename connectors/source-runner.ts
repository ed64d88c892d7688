/**
 * Runs a SourceTask: polls it and produces each row into the topic with an
 * idempotent producer, so that a restart re-sends nothing.
 *
 * The source keeps its position in the topic, not in a side file: every
 * event carries headers with the connector's name, the row's position, the
 * producer sequence it was sent with, and the "safe" position (every row up
 * to it was already in every partition when this poll began). At start the
 * runner reads the newest records of each partition: the largest safe
 * position is where polling resumes, and a re-polled row is skipped when its
 * partition already holds its position (rows reach a partition in position
 * order). Sequences are dense per (producer, partition): producer
 * `<name>.p<N>` writes only partition N, and its next sequence is the last
 * one stored plus one, so a batch re-sent after a crash is answered by the
 * hub as a duplicate instead of appended twice.
 */
import { partitionForKey } from '../protocol/partitioner.ts';
import type { ConnectorConfig } from './config.ts';
import type { JsonRecord } from './hub-http.ts';
import type { SourcePosition, SourceRow, SourceTask } from './task.ts';
import { sleep } from './backoff.ts';
import { StoppedError, Worker, type WorkerDeps } from './worker.ts';

const SOURCE_HEADER = 'tributary.source';
const POSITION_HEADER = 'tributary.source.position';
const SAFE_HEADER = 'tributary.source.safe';
const SEQUENCE_HEADER = 'tributary.source.sequence';

export interface SourceOptions {
  pollIntervalMs: number;
  /** Rows per poll. */
  batchSize: number;
  /** Partitions of the topic when the connector creates it. */
  partitions: number;
  /** Records read back per partition at start to find the connector's last one. */
  recoveryScanRecords: number;
}

/** Records per produce request (the hub's batch limit is far above). */
const PRODUCE_CHUNK = 500;

export class SourceRunner extends Worker {
  private loop: Promise<void> | null = null;
  private partitions = 0;
  private readonly lastPosition = new Map<number, SourcePosition>();
  private readonly nextSequence = new Map<number, number>();
  private position: SourcePosition | null = null;

  constructor(
    config: ConnectorConfig,
    private readonly task: SourceTask,
    private readonly o: SourceOptions,
    deps: WorkerDeps,
  ) {
    super(config, 'source', deps);
  }

  async start(): Promise<void> {
    try {
      await this.retrying('start', () => this.task.start());
      await this.retrying('create topic', () => this.deps.http.ensureTopic(this.config.topic, this.o.partitions));
      await this.retrying('recover position', () => this.recover());
      if (this.status.state === 'starting') this.status.state = 'running';
      this.loop = this.run().catch((e) => {
        if (e instanceof StoppedError) return;
        this.status.state = 'failed';
        this.status.lastError = e instanceof Error ? e.message : String(e);
        this.deps.log.error({ connector: this.config.name, err: this.status.lastError }, 'source stopped');
      });
    } catch (e) {
      if (!(e instanceof StoppedError)) throw e;
    }
  }

  /** Reads the newest records of each partition back: the last position and sequence per partition, and where to resume. */
  private async recover(): Promise<void> {
    const info = await this.deps.http.topic(this.config.topic);
    this.partitions = info.partitions;
    let resume: SourcePosition | null = null;
    const parts: typeof this.status.partitions = [];
    for (const { partition: p, earliest, highWatermark } of info.offsets) {
      parts.push({ partition: p, committed: highWatermark, highWatermark });
      this.nextSequence.set(p, 0);
      let from = Math.max(earliest, highWatermark - this.o.recoveryScanRecords);
      let mine: JsonRecord | null = null;
      while (from < highWatermark) {
        const page = await this.deps.http.read(this.config.topic, p, from, Math.min(1000, highWatermark - from));
        for (const r of page.records) if (header(r, SOURCE_HEADER) === this.config.name) mine = r;
        if (page.nextOffset <= from) break;
        from = page.nextOffset;
      }
      if (!mine) continue;
      const pos = JSON.parse(header(mine, POSITION_HEADER) ?? 'null') as SourcePosition | null;
      const safe = JSON.parse(header(mine, SAFE_HEADER) ?? 'null') as SourcePosition | null;
      if (pos) this.lastPosition.set(p, pos);
      this.nextSequence.set(p, Number(header(mine, SEQUENCE_HEADER)) + 1);
      if (safe && (resume === null || this.task.compare(safe, resume) > 0)) resume = safe;
    }
    this.position = resume;
    this.status.partitions = parts;
    this.deps.log.info({ connector: this.config.name, resume, partitions: this.partitions }, 'source recovered its position from the topic');
  }

  private async run(): Promise<void> {
    while (!this.stopping) {
      await this.whileUnpaused();
      const after = this.position;
      const rows = await this.retrying('poll', () => this.task.poll(after, this.o.batchSize));
      if (rows.length === 0) {
        await sleep(this.o.pollIntervalMs, this.abort.signal);
        continue;
      }
      const byPartition = new Map<number, SourceRow[]>();
      for (const row of rows) {
        const p = partitionForKey(row.key, this.partitions);
        const last = this.lastPosition.get(p);
        if (last && this.task.compare(row.position, last) <= 0) continue; // already in the partition before a restart
        let list = byPartition.get(p);
        if (!list) byPartition.set(p, (list = []));
        list.push(row);
      }
      await Promise.all([...byPartition].map(([p, list]) => this.produce(p, list, after)));
      this.position = rows[rows.length - 1].position;
    }
  }

  private async produce(p: number, rows: SourceRow[], safe: SourcePosition | null): Promise<void> {
    const producerId = `${this.config.name}.p${p}`;
    const safeJson = JSON.stringify(safe);
    for (let i = 0; i < rows.length; i += PRODUCE_CHUNK) {
      const chunk = rows.slice(i, i + PRODUCE_CHUNK);
      const sequence = this.nextSequence.get(p) ?? 0;
      const events = chunk.map((row, j) => ({
        key: row.key,
        value: row.value,
        timestamp: row.timestamp,
        partition: p,
        headers: [
          [SOURCE_HEADER, this.config.name],
          [POSITION_HEADER, JSON.stringify(row.position)],
          [SAFE_HEADER, safeJson],
          [SEQUENCE_HEADER, String(sequence + j)],
        ] as Array<[string, string]>,
      }));
      await this.retrying('produce', () => this.deps.client.produce(this.config.topic, events, { partition: p, producerId, sequence }));
      this.nextSequence.set(p, sequence + chunk.length);
      this.lastPosition.set(p, chunk[chunk.length - 1].position);
      this.status.records += chunk.length;
      const s = this.status.partitions.find((x) => x.partition === p);
      if (s) s.committed = s.highWatermark = (s.highWatermark ?? 0) + chunk.length;
    }
  }

  async stop(): Promise<void> {
    this.abort.abort();
    await this.loop;
    await this.task.stop().catch(() => undefined);
    this.status.state = 'stopped';
  }
}

function header(r: JsonRecord, name: string): string | undefined {
  for (const [k, v] of r.headers ?? []) if (k === name && typeof v === 'string') return v;
  return undefined;
}
