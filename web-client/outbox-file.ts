/**
 * A file-backed outbox for Node gateways that must survive restarts: an
 * append-only journal, fsynced (fdatasync) before each write resolves, and
 * rewritten as one snapshot when it has grown well past what is still live.
 *
 * Journal entry: [u32 payload length][u32 CRC-32C of payload][payload],
 * big-endian; appends, assignments and removals in binary (outbox-journal.ts:
 * an event is its record body, the bytes its batches copy), the rest CBOR.
 * One write and one fdatasync per group commit of appends and per group of
 * acks removed, and store calls that arrive while a write is on its way to
 * disk share the next one (appends, assignments, removals: one writev, one
 * fdatasync). On open the journal is replayed and a torn or corrupt tail (a
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
import { crc32c as portableCrc32c, decodeCbor, encodeCbor, type Crc32c } from '../protocol/index.ts';
import { ClientError } from './errors.ts';
import {
  addSkips,
  failedEvent,
  assignIds,
  newProducerId,
  type Assignment,
  type FailedEvent,
  type NewOutboxEvent,
  type OutboxBounds,
  type OutboxEvent,
  type OutboxStats,
  type OutboxStore,
  type Positions,
} from './outbox.ts';
import { decodeBinaryEntry, encodeAppend, encodeAssign, encodeRemove, framePayload, isBinaryEntry, ENTRY_HEADER_BYTES, type BinaryEntry } from './outbox-journal.ts';
import { EventLog } from './outbox-log.ts';
import { batchCrc32c } from './runtime.ts';

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

/** What a journal write does: its framed entry (null: nothing to write), what it changes once on disk, its answer. */
interface Write<T> {
  bytes: Uint8Array | null;
  apply?: () => void;
  result: () => T;
}

/**
 * What the earlier writes of one journal group take, before any of them is
 * on disk (they are applied only after the group's fdatasync): the later
 * ones number from there.
 */
interface Group {
  /** Counts and last id with the group's appends so far. */
  st: OutboxStats;
  /** `topic/partition` → next sequence, for the group's assignments so far. */
  next: Record<string, number>;
  /** Ids the group's assignments so far have numbered. */
  assigned: Set<number>;
}

/** One store call waiting for the journal. */
interface Request {
  make: (g: Group) => Write<unknown>;
  resolve: (v: unknown) => void;
  reject: (err: unknown) => void;
}

/** Store calls merged into one journal write at most (bounds the write's size with appends of 5,000 events). */
const GROUP_MAX_REQUESTS = 64;

/** `topic/partition` keys of a run of events (mostly of one topic): built once per partition, not per event. */
class SeqKeys {
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

/** `bufs` without its first `skip` bytes (views, no copy). */
function restOf(bufs: Uint8Array[], skip: number): Uint8Array[] {
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

export class FileOutboxStore implements OutboxStore {
  private fh?: fsp.FileHandle;
  private opening?: Promise<{ producerId: string; legacyProducerId?: string }>;
  private pid = '';
  private lpid?: string;
  /** The journal read on open was written by an older client (format 1). */
  private format1 = false;
  private events = new EventLog();
  /** Native CRC-32C once open (the journal is Node-only), the portable one before. */
  private crc: Crc32c = portableCrc32c;
  private failedList: FailedEvent[] = [];
  private seqs: Record<string, number> = {};
  private st: OutboxStats = { events: 0, bytes: 0, lastId: 0 };
  private positions: Record<string, Positions> = {};
  private skips: Record<string, number[]> = {};
  private journalBytes = 0;
  /** Store calls waiting for the journal, in call order; `writing` while a group is on its way to disk. */
  private queue: Request[] = [];
  private writing = false;

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
    this.crc = await batchCrc32c();
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
      if (this.crc(payload) !== b.readUInt32BE(pos + 4)) break;
      let entry: Entry | BinaryEntry;
      try {
        entry = isBinaryEntry(payload) ? decodeBinaryEntry(payload) : (decodeCbor(payload) as Entry);
      } catch {
        break;
      }
      this.apply(entry);
      pos = end;
    }
    return pos;
  }

  private apply(e: Entry | BinaryEntry): void {
    switch (e.o) {
      case 'snap':
        this.pid = e.pid;
        this.lpid = e.lpid;
        this.format1 = e.v !== 2;
        this.seqs = e.seqs;
        this.events = new EventLog();
        for (const x of e.events) this.events.add(x);
        this.failedList = e.failed;
        this.positions = e.positions;
        this.skips = e.skips ?? {};
        this.st = { events: e.events.length, bytes: e.events.reduce((n, x) => n + x.bytes, 0), lastId: e.lastId };
        break;
      case 'a':
        for (const x of e.ev) {
          this.events.add(x);
          this.st.events += 1;
          this.st.bytes += x.bytes;
          if (x.id > this.st.lastId) this.st.lastId = x.id;
        }
        break;
      case 'as': {
        const keys = new SeqKeys();
        for (let i = 0; i < e.ids.length; i++) {
          const x = this.events.get(e.ids[i]);
          if (!x || x.p !== -1) continue;
          // In place: the drain holds these objects and wants them assigned.
          x.p = e.ps[i];
          x.seq = e.ss[i];
          const key = keys.of(x.topic, e.ps[i]);
          if ((this.seqs[key] ?? 0) <= e.ss[i]) this.seqs[key] = e.ss[i] + 1;
        }
        break;
      }
      case 'd':
      case 'f':
        for (const id of e.ids) {
          const x = this.events.get(id);
          if (!x) continue;
          this.events.delete(id);
          this.st.events -= 1;
          this.st.bytes -= x.bytes;
          if (e.o === 'f') {
            this.failedList.push(failedEvent(x, e.code, e.message, e.at));
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
   * Runs `make` after every earlier write is on disk and applied, so it sees
   * the state of the disk (plus, in `g`, what the earlier writes of its group
   * take), then appends its entry (if any), fsyncs and applies it: memory
   * never runs ahead of the disk, and two appends never hand out the same id
   * or sequence. The calls that queue while a group is being written are the
   * next group: their entries go in one writev and one fdatasync.
   */
  private write<T>(make: (g: Group) => Write<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ make, resolve: resolve as (v: unknown) => void, reject });
      if (!this.writing) void this.writeGroups();
    });
  }

  private async writeGroups(): Promise<void> {
    this.writing = true;
    try {
      while (this.queue.length) {
        const reqs = this.queue.splice(0, GROUP_MAX_REQUESTS);
        const fh = this.fh;
        if (!fh) {
          for (const r of reqs) r.reject(new ClientError('CLOSED', 'outbox file is closed'));
          continue;
        }
        const g: Group = { st: { ...this.st }, next: {}, assigned: new Set() };
        const made: Array<{ r: Request; w: Write<unknown> }> = [];
        const bufs: Uint8Array[] = [];
        let total = 0;
        for (const r of reqs) {
          try {
            const w = r.make(g);
            made.push({ r, w });
            if (w.bytes) {
              bufs.push(w.bytes);
              total += w.bytes.length;
            }
          } catch (err) {
            r.reject(ioError(err));
          }
        }
        try {
          if (total) {
            let done = 0;
            // One writev for the group (a short write, rare on a regular file, continues where it stopped).
            while (done < total) {
              const rest = done === 0 ? bufs : restOf(bufs, done);
              const { bytesWritten } = await fh.writev(rest, this.journalBytes + done);
              if (bytesWritten <= 0) throw new Error('journal write wrote nothing');
              done += bytesWritten;
            }
            await fh.datasync();
            this.journalBytes += total;
            for (const { w } of made) w.apply?.();
            if (this.wasteful(COMPACT_MIN_BYTES)) await this.compact();
          }
        } catch (err) {
          for (const { r } of made) r.reject(ioError(err));
          continue;
        }
        for (const { r, w } of made) {
          try {
            r.resolve(w.result());
          } catch (err) {
            r.reject(ioError(err));
          }
        }
      }
    } finally {
      this.writing = false;
    }
  }

  private presentIds(events: OutboxEvent[]): number[] {
    const ids: number[] = [];
    for (const e of events) if (this.events.has(e.id)) ids.push(e.id);
    return ids;
  }

  /** A CBOR entry as a write. */
  private cbor(entry: Entry): Write<void> {
    return { bytes: framePayload(encodeCbor(entry), this.crc), apply: () => this.apply(entry), result: () => undefined };
  }

  /** The journal is past `minBytes` and four times what a snapshot would take. */
  private wasteful(minBytes: number): boolean {
    return this.journalBytes > minBytes && this.journalBytes > 4 * (this.st.bytes + 64 * this.st.events + 4096);
  }

  /** Rewrites the journal as one snapshot: temp file, fsync, rename, fsync the directory. */
  private async compact(): Promise<void> {
    // The snapshot's fields, then its events as one binary append entry: one file, renamed into place whole.
    const snap = framePayload(
      encodeCbor({
        o: 'snap',
        v: 2,
        pid: this.pid,
        lpid: this.lpid,
        seqs: this.seqs,
        lastId: this.st.lastId,
        events: [],
        failed: this.failedList,
        positions: this.positions,
        skips: this.skips,
      } satisfies Entry),
      this.crc,
    );
    const live = [...this.events.values()];
    const events = live.length ? encodeAppend(live, this.crc) : new Uint8Array(0);
    const tmp = `${this.file}.tmp`;
    const th = await fsp.open(tmp, 'w');
    try {
      await th.writev([snap, events], 0);
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
    this.journalBytes = snap.length + events.length;
  }

  append(entries: NewOutboxEvent[], bounds: OutboxBounds): Promise<Array<OutboxEvent | null>> {
    return this.write((g) => {
      // Counted in the group's copy: the state changes only once the entry is on disk.
      const out = assignIds(entries, bounds, g.st, true);
      const ev = out.filter((x): x is OutboxEvent => x !== null);
      return { bytes: ev.length ? encodeAppend(ev, this.crc) : null, apply: () => this.apply({ o: 'a', ev }), result: () => out };
    });
  }

  assign(assignments: Assignment[]): Promise<OutboxEvent[]> {
    return this.write((g) => {
      const ids: number[] = [];
      const ps: number[] = [];
      const ss: number[] = [];
      // Counters taken in this write's group; the state changes only once the entry is on disk (apply).
      const next = g.next;
      const keys = new SeqKeys();
      const stored: OutboxEvent[] = [];
      for (const a of assignments) {
        const e = this.events.get(a.event.id);
        if (!e) continue;
        if (e.p === -1 && !g.assigned.has(e.id)) {
          if (!Number.isInteger(a.p) || a.p < 0) continue;
          const key = keys.of(e.topic, a.p);
          const seq = next[key] ?? this.seqs[key] ?? 0;
          next[key] = seq + 1;
          g.assigned.add(e.id);
          ids.push(e.id);
          ps.push(a.p);
          ss.push(seq);
        }
        stored.push(e);
      }
      // apply() numbers the stored objects in place, so the answer is the events as they are now stored.
      return { bytes: ids.length ? encodeAssign(ids, ps, ss, this.crc) : null, apply: () => this.apply({ o: 'as', ids, ps, ss }), result: () => stored };
    });
  }

  async read(afterId: number, maxEvents: number): Promise<OutboxEvent[]> {
    return this.events.after(afterId, maxEvents);
  }

  remove(events: OutboxEvent[]): Promise<void> {
    return this.write(() => {
      const ids = this.presentIds(events);
      return { bytes: ids.length ? encodeRemove(ids, this.crc) : null, apply: () => this.apply({ o: 'd', ids }), result: () => undefined };
    });
  }

  fail(events: OutboxEvent[], code: string, message: string): Promise<void> {
    return this.write(() => {
      const ids = this.presentIds(events);
      return ids.length ? this.cbor({ o: 'f', ids, code, message, at: Date.now() }) : { bytes: null, result: () => undefined };
    });
  }

  async failed(): Promise<FailedEvent[]> {
    return [...this.failedList];
  }

  async skipped(): Promise<Record<string, number[]>> {
    return structuredClone(this.skips);
  }

  clearFailed(): Promise<void> {
    return this.write(() => this.cbor({ o: 'fc' }));
  }

  async stats(): Promise<OutboxStats> {
    return { ...this.st };
  }

  async countThrough(maxId: number): Promise<number> {
    return this.events.countThrough(maxId);
  }

  async loadPositions(name: string): Promise<Positions | undefined> {
    const p = this.positions[name];
    return p ? { ...p } : undefined;
  }

  savePositions(name: string, positions: Positions): Promise<void> {
    const copy = { ...positions };
    return this.write(() => this.cbor({ o: 'pos', name, positions: copy }));
  }

  async close(): Promise<void> {
    // Leave a small file behind: a drained outbox should not cost the next start a long replay.
    if (this.fh && this.wasteful(COMPACT_ON_CLOSE_BYTES))
      await this.write(() => ({ bytes: null, result: () => undefined }))
        .then(() => this.compact())
        .catch(() => undefined);
    // Every call made before close() is on disk (or failed): the queue runs in order.
    await this.write(() => ({ bytes: null, result: () => undefined })).catch(() => undefined);
    await this.fh?.close();
    this.fh = undefined;
    this.opening = undefined;
    fs.rmSync(this.lockFile, { force: true });
  }
}
