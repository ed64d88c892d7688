/**
 * A file-backed outbox for Node gateways that must survive restarts: an
 * append-only journal, fsynced (fdatasync) before each write resolves, and
 * rewritten as one snapshot when it has grown well past what is still live.
 *
 * Journal entry: [u32 payload length][u32 CRC-32C of payload][CBOR payload],
 * big-endian. On open the journal is replayed and a torn or corrupt tail (a
 * crash mid-write) is truncated: an entry is either whole or never happened,
 * and since a write resolves only after its fsync, nothing acknowledged to a
 * caller is ever in the torn part.
 *
 * One process per file: a `<file>.lock` with the owner's pid keeps a second
 * process out (a lock left by a dead process is taken over).
 */
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { crc32c, decodeCbor, encodeCbor } from '../protocol/index.ts';
import { ClientError } from './errors.ts';
import {
  addSkips,
  assignIds,
  newProducerId,
  numberAssigned,
  type Assignment,
  type FailedEvent,
  type NewOutboxEvent,
  type OutboxBounds,
  type OutboxEvent,
  type OutboxStats,
  type OutboxStore,
  type Positions,
} from './outbox.ts';

/**
 * Journal entries. Format 2 (`v: 2` in the snapshot) numbers events per
 * (producer, partition) through `as` entries; a journal without it was
 * written by an older client (sequences per topic, records form): its
 * producer id becomes `lpid`, for its events without `p`, and a new one is
 * made for the batch form.
 */
type Entry =
  | {
      o: 'snap';
      v?: 2;
      pid: string;
      lpid?: string;
      /** Format 1: topic → next sequence; format 2: topic/partition → next sequence. */
      seqs: Record<string, number>;
      lastId: number;
      events: OutboxEvent[];
      failed: FailedEvent[];
      positions: Record<string, Positions>;
      skips?: Record<string, number[]>;
    }
  | { o: 'a'; ev: OutboxEvent[] }
  | { o: 'as'; ids: number[]; ps: number[]; ss: number[] }
  | { o: 'd'; ids: number[] }
  | { o: 'f'; ids: number[]; code: string; message: string; at: number }
  | { o: 'fc' }
  | { o: 'pos'; name: string; positions: Positions };

const ENTRY_HEADER_BYTES = 8;
/** Compact when the journal exceeds this and is 4× the live data. */
const COMPACT_MIN_BYTES = 1024 * 1024;
/** On close the bar is lower: nothing waits for the rewrite. */
const COMPACT_ON_CLOSE_BYTES = 64 * 1024;

function ioError(err: unknown): ClientError {
  if (err instanceof ClientError) return err;
  const code = (err as NodeJS.ErrnoException | null)?.code;
  if (code === 'ENOSPC' || code === 'EDQUOT') return new ClientError('OUTBOX_QUOTA', `outbox file: no space left (${code})`, { cause: err });
  return new ClientError('OUTBOX_STORAGE', `outbox file: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
}

function frame(entry: Entry): Buffer {
  const payload = encodeCbor(entry);
  const out = Buffer.allocUnsafe(ENTRY_HEADER_BYTES + payload.length);
  out.writeUInt32BE(payload.length, 0);
  out.writeUInt32BE(crc32c(payload), 4);
  out.set(payload, ENTRY_HEADER_BYTES);
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

export class FileOutboxStore implements OutboxStore {
  private fh?: fsp.FileHandle;
  private opening?: Promise<{ producerId: string; legacyProducerId?: string }>;
  private pid = '';
  private lpid?: string;
  /** The journal read on open was written by an older client (format 1). */
  private format1 = false;
  private events = new Map<number, OutboxEvent>();
  private failedList: FailedEvent[] = [];
  private seqs: Record<string, number> = {};
  private st: OutboxStats = { events: 0, bytes: 0, lastId: 0 };
  private positions: Record<string, Positions> = {};
  private skips: Record<string, number[]> = {};
  private journalBytes = 0;
  /** One writer: every journal write runs after the previous one. */
  private tail: Promise<unknown> = Promise.resolve();

  constructor(readonly file: string) {}

  private get lockFile(): string {
    return `${this.file}.lock`;
  }

  open(): Promise<{ producerId: string; legacyProducerId?: string }> {
    this.opening ??= this.doOpen().catch((err) => {
      this.opening = undefined;
      throw ioError(err);
    });
    return this.opening;
  }

  private takeLock(): void {
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        fs.writeFileSync(this.lockFile, String(process.pid), { flag: 'wx' });
        return;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        const owner = Number(fs.readFileSync(this.lockFile, 'utf8'));
        if (owner === process.pid || !Number.isInteger(owner) || !pidAlive(owner)) fs.rmSync(this.lockFile, { force: true });
        else throw new ClientError('OUTBOX_STORAGE', `outbox file ${this.file} is in use by process ${owner}`);
      }
    }
    throw new ClientError('OUTBOX_STORAGE', `could not lock ${this.lockFile}`);
  }

  private async doOpen(): Promise<{ producerId: string; legacyProducerId?: string }> {
    await fsp.mkdir(path.dirname(path.resolve(this.file)), { recursive: true });
    this.takeLock();
    let bytes: Buffer;
    try {
      bytes = await fsp.readFile(this.file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      bytes = Buffer.alloc(0);
    }
    const good = this.replay(bytes);
    this.fh = await fsp.open(this.file, fs.constants.O_RDWR | fs.constants.O_CREAT);
    if (good < bytes.length) await this.fh.truncate(good); // torn tail from a crash mid-write
    this.journalBytes = good;
    if (this.format1) {
      // An older client's journal: its events drain in the records form under their producer id,
      // and the batch form numbers under a new one (the hub counts the two differently).
      this.lpid = this.pid || undefined;
      this.pid = '';
      this.seqs = {};
    }
    if (!this.pid) {
      this.pid = newProducerId();
      await this.compact(); // the first snapshot carries the new producer id
    }
    return this.lpid ? { producerId: this.pid, legacyProducerId: this.lpid } : { producerId: this.pid };
  }

  /** Applies every whole entry; returns the byte length of the good prefix. */
  private replay(b: Buffer): number {
    let pos = 0;
    while (b.length - pos >= ENTRY_HEADER_BYTES) {
      const len = b.readUInt32BE(pos);
      const end = pos + ENTRY_HEADER_BYTES + len;
      if (end > b.length) break;
      const payload = b.subarray(pos + ENTRY_HEADER_BYTES, end);
      if (crc32c(payload) !== b.readUInt32BE(pos + 4)) break;
      let entry: Entry;
      try {
        entry = decodeCbor(payload) as Entry;
      } catch {
        break;
      }
      this.apply(entry);
      pos = end;
    }
    return pos;
  }

  private apply(e: Entry): void {
    switch (e.o) {
      case 'snap':
        this.pid = e.pid;
        this.lpid = e.lpid;
        this.format1 = e.v !== 2;
        this.seqs = e.seqs;
        this.events = new Map(e.events.map((x) => [x.id, x]));
        this.failedList = e.failed;
        this.positions = e.positions;
        this.skips = e.skips ?? {};
        this.st = { events: e.events.length, bytes: e.events.reduce((n, x) => n + x.bytes, 0), lastId: e.lastId };
        break;
      case 'a':
        for (const x of e.ev) {
          this.events.set(x.id, x);
          this.st.events += 1;
          this.st.bytes += x.bytes;
          if (x.id > this.st.lastId) this.st.lastId = x.id;
        }
        break;
      case 'as':
        for (let i = 0; i < e.ids.length; i++) {
          const x = this.events.get(e.ids[i]);
          if (!x || x.p !== -1) continue;
          this.events.set(x.id, { ...x, p: e.ps[i], seq: e.ss[i] });
          const key = `${x.topic}/${e.ps[i]}`;
          if ((this.seqs[key] ?? 0) <= e.ss[i]) this.seqs[key] = e.ss[i] + 1;
        }
        break;
      case 'd':
      case 'f':
        for (const id of e.ids) {
          const x = this.events.get(id);
          if (!x) continue;
          this.events.delete(id);
          this.st.events -= 1;
          this.st.bytes -= x.bytes;
          if (e.o === 'f') {
            this.failedList.push({ ...x, code: e.code, message: e.message, failedAt: e.at });
            addSkips(this.skips, [x]);
          }
        }
        break;
      case 'fc':
        this.failedList = [];
        break;
      case 'pos':
        this.positions[e.name] = e.positions;
        break;
    }
  }

  /**
   * Runs `make` after every earlier write, so it sees the state of the disk,
   * then appends its entry (if any), fsyncs and applies it: memory never runs
   * ahead of the disk, and two appends never hand out the same sequence.
   */
  private write<T>(make: () => { entry: Entry | null; result: T }): Promise<T> {
    const run = async (): Promise<T> => {
      const fh = this.fh;
      if (!fh) throw new ClientError('CLOSED', 'outbox file is closed');
      const { entry, result } = make();
      if (!entry) return result;
      const buf = frame(entry);
      await fh.write(buf, 0, buf.length, this.journalBytes);
      await fh.datasync();
      this.journalBytes += buf.length;
      this.apply(entry);
      if (this.wasteful(COMPACT_MIN_BYTES)) await this.compact();
      return result;
    };
    const p = this.tail.then(run, run);
    this.tail = p.catch(() => undefined);
    return p.catch((err) => {
      throw ioError(err);
    });
  }

  private presentIds(events: OutboxEvent[]): number[] {
    return events.filter((e) => this.events.has(e.id)).map((e) => e.id);
  }

  /** The journal is past `minBytes` and four times what a snapshot would take. */
  private wasteful(minBytes: number): boolean {
    return this.journalBytes > minBytes && this.journalBytes > 4 * (this.st.bytes + 64 * this.st.events + 4096);
  }

  /** Rewrites the journal as one snapshot: temp file, fsync, rename, fsync the directory. */
  private async compact(): Promise<void> {
    const snap = frame({
      o: 'snap',
      v: 2,
      pid: this.pid,
      lpid: this.lpid,
      seqs: this.seqs,
      lastId: this.st.lastId,
      events: [...this.events.values()],
      failed: this.failedList,
      positions: this.positions,
      skips: this.skips,
    });
    const tmp = `${this.file}.tmp`;
    const th = await fsp.open(tmp, 'w');
    try {
      await th.write(snap, 0, snap.length, 0);
      await th.sync();
    } finally {
      await th.close();
    }
    await fsp.rename(tmp, this.file);
    const dir = await fsp.open(path.dirname(path.resolve(this.file)), 'r');
    try {
      await dir.sync();
    } finally {
      await dir.close();
    }
    await this.fh?.close();
    this.fh = await fsp.open(this.file, fs.constants.O_RDWR);
    this.journalBytes = snap.length;
  }

  append(entries: NewOutboxEvent[], bounds: OutboxBounds): Promise<Array<OutboxEvent | null>> {
    return this.write(() => {
      // Assign on copies: the state changes only once the entry is on disk.
      const st = { ...this.st };
      const out = assignIds(entries, bounds, st);
      const ev = out.filter((x): x is OutboxEvent => x !== null);
      return { entry: ev.length ? { o: 'a', ev } : null, result: out };
    });
  }

  assign(assignments: Assignment[]): Promise<OutboxEvent[]> {
    return this.write(() => {
      const partitionOf = new Map<number, number>();
      const current: OutboxEvent[] = [];
      for (const a of assignments) {
        const e = this.events.get(a.event.id);
        if (!e) continue;
        partitionOf.set(a.event.id, a.p);
        current.push(e);
      }
      // Number on a copy of the counters: the state changes only once the entry is on disk (apply).
      const out = numberAssigned(current, partitionOf, { ...this.seqs });
      const fresh = out.filter((e) => this.events.get(e.id)?.p === -1);
      const entry: Entry | null = fresh.length ? { o: 'as', ids: fresh.map((e) => e.id), ps: fresh.map((e) => e.p!), ss: fresh.map((e) => e.seq) } : null;
      return { entry, result: out };
    });
  }

  async read(afterId: number, maxEvents: number): Promise<OutboxEvent[]> {
    const out: OutboxEvent[] = [];
    for (const e of this.events.values()) {
      if (e.id <= afterId) continue;
      out.push(e);
      if (out.length >= maxEvents) break;
    }
    return out;
  }

  remove(events: OutboxEvent[]): Promise<void> {
    return this.write(() => {
      const ids = this.presentIds(events);
      return { entry: ids.length ? { o: 'd', ids } : null, result: undefined };
    });
  }

  fail(events: OutboxEvent[], code: string, message: string): Promise<void> {
    return this.write(() => {
      const ids = this.presentIds(events);
      return { entry: ids.length ? { o: 'f', ids, code, message, at: Date.now() } : null, result: undefined };
    });
  }

  async failed(): Promise<FailedEvent[]> {
    return [...this.failedList];
  }

  async skipped(): Promise<Record<string, number[]>> {
    return structuredClone(this.skips);
  }

  clearFailed(): Promise<void> {
    return this.write(() => ({ entry: { o: 'fc' }, result: undefined }));
  }

  async stats(): Promise<OutboxStats> {
    return { ...this.st };
  }

  async countThrough(maxId: number): Promise<number> {
    let n = 0;
    for (const e of this.events.values()) {
      if (e.id > maxId) break;
      n++;
    }
    return n;
  }

  async loadPositions(name: string): Promise<Positions | undefined> {
    const p = this.positions[name];
    return p ? { ...p } : undefined;
  }

  savePositions(name: string, positions: Positions): Promise<void> {
    const copy = { ...positions };
    return this.write(() => ({ entry: { o: 'pos', name, positions: copy }, result: undefined }));
  }

  async close(): Promise<void> {
    // Leave a small file behind: a drained outbox should not cost the next start a long replay.
    if (this.fh && this.wasteful(COMPACT_ON_CLOSE_BYTES))
      await this.write(() => ({ entry: null, result: undefined }))
        .then(() => this.compact())
        .catch(() => undefined);
    await this.tail;
    await this.fh?.close();
    this.fh = undefined;
    this.opening = undefined;
    fs.rmSync(this.lockFile, { force: true });
  }
}
