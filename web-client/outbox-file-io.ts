/**
 * The file outbox's file handling apart from the journal's format: the
 * lock file that keeps a second process out, errors as the client's codes,
 * what a short writev leaves to write, and the shapes of the journal's
 * queue of writes (outbox-file.ts `write`).
 */
import fs from 'node:fs';
import { ClientError } from './errors.ts';
import type { Assignment, OutboxEvent, OutboxStats } from './outbox.ts';

/** What a journal write does: its framed entry (null: nothing to write), what it changes once on disk, its answer. */
export interface Write<T> {
  bytes: Uint8Array | null;
  apply?: () => void;
  result: () => T;
}

/**
 * What the earlier writes of one journal group take, before any of them is
 * on disk (they are applied only after the group's fdatasync): the later
 * ones number from there.
 */
export interface Group {
  /** Counts and last id with the group's appends so far. */
  st: OutboxStats;
  /** `topic/partition` → next sequence, for the group's assignments so far. */
  next: Record<string, number>;
  /** Ids the group's earlier assignments numbered, one array per call (a Set of them is made only when a second call joins: rare). */
  assigned: number[][];
}

/** One store call waiting for the journal. */
export interface Request {
  make: (g: Group) => Write<unknown>;
  resolve: (v: unknown) => void;
  reject: (err: unknown) => void;
}

/** An I/O failure as the client's error: OUTBOX_QUOTA when the disk is full, OUTBOX_STORAGE otherwise. */
export function ioError(err: unknown): ClientError {
  if (err instanceof ClientError) return err;
  const code = (err as NodeJS.ErrnoException | null)?.code;
  if (code === 'ENOSPC' || code === 'EDQUOT') return new ClientError('OUTBOX_QUOTA', `outbox file: no space left (${code})`, { cause: err });
  return new ClientError('OUTBOX_STORAGE', `outbox file: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
}

/** `topic/partition` keys of a run of events (mostly of one topic): built once per partition, not per event. */
export class SeqKeys {
  private topic = '';
  private keys: string[] = [];

  of(topic: string, p: number): string {
    if (topic !== this.topic) {
      this.topic = topic;
      this.keys = [];
    }
    return (this.keys[p] ??= `${topic}/${p}`);
  }
}

/**
 * Partitions and sequences for the unassigned events among `assignments`,
 * numbered from the group's counters (`g.next`, else `seqs`); `g` takes the
 * new ones. The events already assigned are in `stored` as they are.
 */
export function numberAssignments(
  assignments: readonly Assignment[],
  g: Group,
  seqs: Record<string, number>,
  get: (id: number) => OutboxEvent | undefined,
): { ids: number[]; ps: number[]; ss: number[]; stored: OutboxEvent[] } {
  const ids: number[] = [];
  const ps: number[] = [];
  const ss: number[] = [];
  const stored: OutboxEvent[] = [];
  const next = g.next;
  const keys = new SeqKeys();
  const taken = g.assigned.length ? new Set(g.assigned.flat()) : undefined;
  // Runs of one (topic, partition) are the rule: the counter is looked up once per run.
  let runTopic = '';
  let runP = -1;
  let runKey = '';
  let seq = 0;
  let lastId = -1;
  for (const a of assignments) {
    const e = get(a.event.id);
    if (!e) continue;
    // (An id listed twice in one call is numbered once: ids come in order, so a repeat is at most the last one.)
    if (e.p === -1 && !taken?.has(e.id) && !(e.id <= lastId && ids.includes(e.id))) {
      if (!Number.isInteger(a.p) || a.p < 0) continue;
      if (e.id > lastId) lastId = e.id;
      if (a.p !== runP || e.topic !== runTopic) {
        if (runKey) next[runKey] = seq;
        runTopic = e.topic;
        runP = a.p;
        runKey = keys.of(runTopic, runP);
        seq = next[runKey] ?? seqs[runKey] ?? 0;
      }
      ids.push(e.id);
      ps.push(a.p);
      ss.push(seq++);
    }
    stored.push(e);
  }
  if (runKey) next[runKey] = seq;
  g.assigned.push(ids);
  return { ids, ps, ss, stored };
}

/** `bufs` without its first `skip` bytes (views, no copy). */
export function restOf(bufs: Uint8Array[], skip: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (const b of bufs) {
    if (skip >= b.length) skip -= b.length;
    else {
      out.push(skip ? b.subarray(skip) : b);
      skip = 0;
    }
  }
  return out;
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Takes `<file>.lock` with this process's pid; a lock left by a dead process is taken over. */
export function takeLock(lockFile: string): void {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      fs.writeFileSync(lockFile, String(process.pid), { flag: 'wx' });
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const owner = Number(fs.readFileSync(lockFile, 'utf8'));
      if (owner === process.pid || !Number.isInteger(owner) || !pidAlive(owner)) fs.rmSync(lockFile, { force: true });
      else throw new ClientError('OUTBOX_STORAGE', `outbox file ${lockFile.slice(0, -'.lock'.length)} is in use by process ${owner}`);
    }
  }
  throw new ClientError('OUTBOX_STORAGE', `could not lock ${lockFile}`);
}
