/**
 * Idempotent producer state of one partition: per producer id, the highest
 * sequence appended and its last few batches (Kafka keeps five) with their
 * offsets, so that a retry answers with the original offsets. Bounded: the
 * least recently used producers are evicted; a producer that is not in the
 * table after evictions began is looked up in the log (partition-log.ts).
 *
 * Snapshots (`<offset>.snapshot`, JSON) hold the state as of an offset, so
 * that recovery replays only the batch headers after it.
 */
import fsp from 'node:fs/promises';
import path from 'node:path';
import { offsetName } from './data-dir.ts';

const BATCHES_PER_PRODUCER = 5;
const SNAPSHOT_SUFFIX = '.snapshot';
const SNAPSHOTS_KEPT = 2;

interface ProducerBatch {
  firstSeq: number;
  lastSeq: number;
  baseOffset: number;
  lastOffset: number;
  appendTime: number;
  /** The producer's highest sequence before this batch (to undo it). */
  prevLastSeq: number;
}

export interface ProducerEntry {
  lastSeq: number;
  batches: ProducerBatch[];
}

type SnapshotRow = [pid: string, lastSeq: number, batches: Array<[number, number, number, number, number, number]>];

export class ProducerStateTable {
  private readonly map = new Map<string, ProducerEntry>();
  /** Producers evicted so far: once > 0, a miss must consult the log. */
  evictions = 0;

  constructor(private readonly maxProducers: number) {}

  get size(): number {
    return this.map.size;
  }

  /** Looks a producer up and marks it recently used. */
  get(pid: string): ProducerEntry | undefined {
    const e = this.map.get(pid);
    if (e) {
      this.map.delete(pid);
      this.map.set(pid, e);
    }
    return e;
  }

  /** Records an appended (or recovered) batch of `pid`. */
  record(pid: string, firstSeq: number, lastSeq: number, baseOffset: number, lastOffset: number, appendTime: number): void {
    let e = this.get(pid);
    if (!e) {
      e = { lastSeq: -1, batches: [] };
      this.map.set(pid, e);
      if (this.map.size > this.maxProducers) {
        const oldest = this.map.keys().next().value as string;
        this.map.delete(oldest);
        this.evictions++;
      }
    }
    if (e.batches.length >= BATCHES_PER_PRODUCER) e.batches.shift();
    e.batches.push({ firstSeq, lastSeq, baseOffset, lastOffset, appendTime, prevLastSeq: e.lastSeq });
    if (lastSeq > e.lastSeq) e.lastSeq = lastSeq;
  }

  /** Seeds a producer found in the log (after eviction) without a batch. */
  seed(pid: string, entry: ProducerEntry): void {
    if (this.map.has(pid)) return;
    this.map.set(pid, entry);
    if (this.map.size > this.maxProducers) {
      this.map.delete(this.map.keys().next().value as string);
      this.evictions++;
    }
  }

  /** Forgets every batch at or above `offset` (appends that were never acknowledged). */
  truncateFrom(offset: number): void {
    for (const [pid, e] of this.map) {
      let undone = -2;
      while (e.batches.length && e.batches[e.batches.length - 1].baseOffset >= offset) undone = e.batches.pop()!.prevLastSeq;
      if (undone === -2) continue;
      e.lastSeq = undone;
      if (undone < 0 && e.batches.length === 0) this.map.delete(pid);
    }
  }

  /** The state as of `offset` (batches below it only), for a snapshot. */
  rowsAsOf(offset: number): SnapshotRow[] {
    const rows: SnapshotRow[] = [];
    for (const [pid, e] of this.map) {
      let lastSeq = e.lastSeq;
      const kept: SnapshotRow[2] = [];
      for (const b of e.batches) {
        if (b.baseOffset < offset) kept.push([b.firstSeq, b.lastSeq, b.baseOffset, b.lastOffset, b.appendTime, b.prevLastSeq]);
        else if (lastSeq === e.lastSeq) lastSeq = b.prevLastSeq;
      }
      if (lastSeq >= 0) rows.push([pid, lastSeq, kept]);
    }
    return rows;
  }

  loadRows(rows: SnapshotRow[]): void {
    for (const [pid, lastSeq, batches] of rows) {
      this.map.set(pid, {
        lastSeq,
        batches: batches.map(([firstSeq, last, baseOffset, lastOffset, appendTime, prevLastSeq]) => ({ firstSeq, lastSeq: last, baseOffset, lastOffset, appendTime, prevLastSeq })),
      });
    }
    while (this.map.size > this.maxProducers) {
      this.map.delete(this.map.keys().next().value as string);
      this.evictions++;
    }
  }
}

/**
 * Writes the snapshot as of `offset` (temp file + rename) and removes all but
 * the newest few. Not fsync'ed: on ext4 an fsync here would also flush every
 * dirty log page of the hub. A snapshot lost or torn by a power loss is
 * simply skipped on load (an older one, or the log, is used instead), and
 * one pointing past the recovered log end is ignored.
 */
export async function writeSnapshot(dir: string, table: ProducerStateTable, offset: number): Promise<void> {
  const body = JSON.stringify({ v: 1, offset, evictions: table.evictions, producers: table.rowsAsOf(offset) });
  const file = path.join(dir, offsetName(offset) + SNAPSHOT_SUFFIX);
  const tmp = `${file}.tmp-${process.pid}`;
  await fsp.writeFile(tmp, body);
  await fsp.rename(tmp, file);
  const all = await listSnapshots(dir);
  for (const old of all.slice(0, Math.max(0, all.length - SNAPSHOTS_KEPT))) await fsp.rm(path.join(dir, offsetName(old) + SNAPSHOT_SUFFIX), { force: true });
}

async function listSnapshots(dir: string): Promise<number[]> {
  const names = await fsp.readdir(dir);
  return names
    .filter((n) => n.endsWith(SNAPSHOT_SUFFIX) && /^\d{20}\.snapshot$/.test(n))
    .map((n) => Number(n.slice(0, 20)))
    .sort((a, b) => a - b);
}

/**
 * Loads the newest readable snapshot at or below `maxOffset` into `table`;
 * returns its offset, or -1 when none is usable (recovery then replays from
 * the start of the log).
 */
export async function loadSnapshot(dir: string, table: ProducerStateTable, maxOffset: number): Promise<number> {
  const all = await listSnapshots(dir);
  for (let i = all.length - 1; i >= 0; i--) {
    if (all[i] > maxOffset) continue;
    try {
      const snap = JSON.parse(await fsp.readFile(path.join(dir, offsetName(all[i]) + SNAPSHOT_SUFFIX), 'utf8')) as { v: number; offset: number; evictions?: number; producers: SnapshotRow[] };
      if (snap.v !== 1 || snap.offset !== all[i] || !Array.isArray(snap.producers)) continue;
      table.loadRows(snap.producers);
      table.evictions += snap.evictions ?? 0;
      return snap.offset;
    } catch {
      // torn or garbled: try an older one
    }
  }
  return -1;
}
