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
import { ioError, numberAssignments, restOf, SeqKeys, takeLock, type Group, type Request, type Write } from './outbox-file-io.ts';
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
import { toOutboxRecord, type SendEvent } from './event-input.ts';
import {
  AppendCursor,
  AppendGroup,
  decodeBinaryEntry,
  type Entry,
  encodeAppend,
  encodeAssign,
  encodeRemove,
  framePayload,
  isBinaryEntry,
  plainRecord,
  ENTRY_HEADER_BYTES,
  type BinaryEntry,
} from './outbox-journal.ts';
import { EventLog } from './outbox-log.ts';
import { FileSegments } from './outbox-file-segments.ts';
import { CHUNK_MAX_EVENTS } from './outbox-segment.ts';
import { batchCrc32c } from './runtime.ts';

/** Compact when the journal exceeds this and is 4× the live data. */
const COMPACT_MIN_BYTES = 1024 * 1024;
/** On close the bar is lower: nothing waits for the rewrite. */
const COMPACT_ON_CLOSE_BYTES = 64 * 1024;

/** Store calls merged into one journal write at most (bounds the write's size with appends of 5,000 events). */
const GROUP_MAX_REQUESTS = 64;

/** Events of send()'s direct path per journal group at most (bounds its buffer; the groups queued behind share a writev). */
const DIRECT_GROUP_MAX_EVENTS = CHUNK_MAX_EVENTS;

/** send() calls written straight into one journal append entry; `done` settles once it is on disk (one promise for all). */
interface DirectGroup {
  g: AppendGroup;
  firstId: number;
  count: number;
  bytes: number;
  done: Promise<void>;
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
  /** The direct path's group still taking events, if any. */
  private group?: DirectGroup;
  /** The direct path's groups not on disk yet (counted against the bounds) and the last id it handed out. */
  private direct = { events: 0, bytes: 0, lastId: 0 };
  /** The last direct group's `done`, settled or not. */
  private directDone?: Promise<void>;
  /** append() calls not settled: they number ids when their group is written, so the direct path waits for them. */
  private appending = 0;

  /** The drain's segments (outbox-file-segments.ts), once open; not for a journal holding an older client's events (records form). */
  segments?: FileSegments;

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

  private async doOpen(): Promise<{ producerId: string; legacyProducerId?: string }> {
    await fsp.mkdir(path.dirname(path.resolve(this.file)), { recursive: true });
    this.crc = await batchCrc32c();
    takeLock(this.lockFile);
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
    let legacy = false;
    for (const e of this.events.objects()) if (e.p === undefined) legacy = true;
    this.segments = legacy
      ? undefined
      : new FileSegments({
          log: () => this.events,
          producerId: () => this.pid,
          seqs: () => this.seqs,
          stats: () => this.st,
          failedList: () => this.failedList,
          skips: () => this.skips,
          write: (make) => this.write(make),
          crc: () => this.crc,
          cborBytes: (entry) => framePayload(encodeCbor(entry), this.crc),
        });
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
            this.failedList.push(failedEvent({ ...x, rec: plainRecord(x.rec) }, e.code, e.message, e.at));
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
  private write<T>(make: (g: Group) => Write<T>, defer = false): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ make, resolve: resolve as (v: unknown) => void, reject });
      if (this.writing) return;
      if (!defer) void this.writeGroups();
      else {
        // The rest of this tick's send() calls join the group before it is written.
        this.writing = true;
        queueMicrotask(() => void this.writeGroups());
      }
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
        // Ids the direct path burnt in a group that failed to write are not handed out again.
        const g: Group = { st: { ...this.st, lastId: Math.max(this.st.lastId, this.direct.lastId) }, next: {}, assigned: [] };
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
    // The snapshot's fields, then its events as binary append entries: one file, renamed into place whole.
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
    // Events still packed as their append group's bytes are copied, not made into objects (a burst of them all).
    const live = [...this.events.objects()];
    // The drain's chunks first: their ids are below the log's.
    const events = this.segments?.snapshotEntries(this.crc) ?? [];
    if (live.length) events.push(encodeAppend(live, this.crc));
    events.push(...this.events.packedEntries(this.crc));
    const tmp = `${this.file}.tmp`;
    const th = await fsp.open(tmp, 'w');
    try {
      await th.writev([snap, ...events], 0);
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
    this.journalBytes = events.reduce((n, b) => n + b.length, snap.length);
  }

  append(entries: NewOutboxEvent[], bounds: OutboxBounds): Promise<Array<OutboxEvent | null>> {
    this.appending++;
    const done = this.write((g) => {
      // Counted in the group's copy: the state changes only once the entry is on disk.
      const out = assignIds(entries, bounds, g.st, true);
      const ev = out.filter((x): x is OutboxEvent => x !== null);
      return { bytes: ev.length ? encodeAppend(ev, this.crc) : null, apply: () => this.apply({ o: 'a', ev }), result: () => out };
    });
    const settled = (): void => void this.appending--;
    done.then(settled, settled);
    return done;
  }

  /**
   * send()'s direct path (OutboxStore.sendDirect): the event is validated and
   * written into the open journal group at the call, numbered at once, and
   * the call shares the group's promise, which resolves after its
   * fdatasync. Once written, the group's events stay packed as its bytes
   * until the drain reads them (EventLog.addPacked): no object per event
   * lives through the wait for the disk. Undefined (nothing stored) when the
   * event does not fit the bounds now or an append() is still numbering.
   */
  sendDirect(topic: string, sub: string, event: SendEvent, now: number, bounds: OutboxBounds): Promise<void> | undefined {
    if (!this.fh || this.appending > 0) return undefined;
    const { rec, bytes, body } = toOutboxRecord(topic, event, now, true);
    if (bytes > bounds.maxBytes) throw new ClientError('OUTBOX_FULL', `event of ${bytes} bytes exceeds the outbox's maxOutboxBytes (${bounds.maxBytes})`);
    const d = this.direct;
    if (this.st.events + d.events + 1 > bounds.maxEvents || this.st.bytes + d.bytes + bytes > bounds.maxBytes) return undefined;
    const id = Math.max(this.st.lastId, d.lastId) + 1;
    const grp = this.group ?? this.openGroup(body!.length);
    grp.g.add(id, topic, sub, rec.ts!, rec.p, bytes, body!);
    if (grp.count++ === 0) grp.firstId = id;
    grp.bytes += bytes;
    d.lastId = id;
    d.events++;
    d.bytes += bytes;
    if (grp.count >= DIRECT_GROUP_MAX_EVENTS) this.group = undefined; // the next call opens another
    return grp.done;
  }

  /**
   * sendMany()'s direct path (OutboxStore.sendManyDirect): every event is
   * validated and written into the open group (an invalid one throws with
   * none of them in), then the events past the first that does not fit the
   * bounds are taken back out; those that fit share the group's promise.
   */
  sendManyDirect(topic: string, sub: string, events: ArrayLike<SendEvent>, now: number, bounds: OutboxBounds): { stored: number; done: Promise<void> } | undefined {
    if (!this.fh || this.appending > 0 || events.length === 0) return undefined;
    const d = this.direct;
    const grp = this.group ?? this.openGroup(128);
    const g = grp.g;
    const start = g.mark();
    let cut = start;
    const firstId = Math.max(this.st.lastId, d.lastId) + 1;
    let count = this.st.events + d.events;
    let total = this.st.bytes + d.bytes;
    let stored = -1;
    let storedBytes = 0;
    try {
      for (let i = 0; i < events.length; i++) {
        const { rec, bytes, body } = toOutboxRecord(topic, events[i], now, true);
        if (bytes > bounds.maxBytes) throw new ClientError('OUTBOX_FULL', `event of ${bytes} bytes exceeds the outbox's maxOutboxBytes (${bounds.maxBytes})`);
        if (stored < 0) {
          if (count + 1 > bounds.maxEvents || total + bytes > bounds.maxBytes) {
            stored = i;
            cut = g.mark();
          } else {
            count++;
            total += bytes;
            storedBytes += bytes;
          }
        }
        g.add(firstId + i, topic, sub, rec.ts!, rec.p, bytes, body!);
      }
    } catch (err) {
      g.reset(start);
      throw err;
    }
    if (stored < 0) stored = events.length;
    else g.reset(cut);
    if (stored > 0) {
      if (grp.count === 0) grp.firstId = firstId;
      grp.count += stored;
      grp.bytes += storedBytes;
      d.lastId = firstId + stored - 1;
      d.events += stored;
      d.bytes += storedBytes;
      if (grp.count >= DIRECT_GROUP_MAX_EVENTS) this.group = undefined;
    }
    return { stored, done: grp.done };
  }

  private openGroup(bodyBytes: number): DirectGroup {
    const grp: DirectGroup = { g: new AppendGroup(Math.min(DIRECT_GROUP_MAX_EVENTS, 256) * (bodyBytes + 32)), firstId: 0, count: 0, bytes: 0, done: Promise.resolve() };
    const unpend = (): void => {
      this.direct.events -= grp.count;
      this.direct.bytes -= grp.bytes;
    };
    grp.done = this.write<void>((g) => {
      if (this.group === grp) this.group = undefined; // no event joins it from here on
      g.st.events += grp.count;
      g.st.bytes += grp.bytes;
      if (grp.count === 0) return { bytes: null, result: () => undefined }; // a sendMany's events taken back out
      g.st.lastId = Math.max(g.st.lastId, grp.firstId + grp.count - 1);
      const entry = grp.g.finish(this.crc);
      return {
        bytes: entry,
        apply: () => {
          this.events.addPacked(new AppendCursor(entry.subarray(ENTRY_HEADER_BYTES)), grp.firstId, grp.count);
          this.st.events += grp.count;
          this.st.bytes += grp.bytes;
          this.st.lastId = Math.max(this.st.lastId, grp.firstId + grp.count - 1);
          unpend();
        },
        result: () => undefined,
      };
    }, true);
    // A group that failed to write leaves the bounds' count (its callers get the error).
    grp.done.then(undefined, unpend);
    this.group = grp;
    this.directDone = grp.done;
    return grp;
  }

  /** Once every direct group so far is on disk (or failed): the counts then include them. */
  private directSettled(): Promise<void> | undefined {
    const d = this.directDone;
    if (!d || this.direct.events === 0) return undefined;
    return d.then(
      () => undefined,
      () => undefined,
    );
  }

  assign(assignments: Assignment[]): Promise<OutboxEvent[]> {
    return this.write((g) => {
      const { ids, ps, ss, stored } = numberAssignments(assignments, g, this.seqs, (id) => this.events.get(id));
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
    await this.directSettled();
    return { ...this.st };
  }

  async countThrough(maxId: number): Promise<number> {
    return (this.segments?.countThrough(maxId) ?? 0) + this.events.countThrough(maxId);
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
