/**
 * The browser outbox: one IndexedDB database per outbox name, shared by every
 * tab of the origin (tabs.ts makes sure only one of them drains it). The
 * database's stores and records: outbox-idb-schema.ts; the draining tab's
 * view of the chunks it holds, which lets its assignments and removals write
 * without reading first: outbox-idb-held.ts.
 *
 * An append is one readwrite transaction over chunks, chunkState and meta:
 * ids and counters are read and written together, and IndexedDB runs
 * readwrite transactions over the same stores one at a time, across tabs
 * too, so two tabs can never hand out the same id.
 *
 * Durability (the transaction's `durability` hint):
 * - 'relaxed' (default): the commit is reported once the browser has handed
 *   the data to the operating system. It survives reloads, tab and browser
 *   crashes; an OS crash or power cut may lose the last moments of sends.
 * - 'strict': the commit waits for the data to be flushed to disk, so it also
 *   survives power loss, at the cost of one flush per group commit.
 */
import { openDB, unwrap, type IDBPDatabase } from 'idb';
import { ClientError } from './errors.ts';
import { decodeChunk, encodeChunk, type StoredChunk } from './outbox-idb-chunk.ts';
import { HeldChunks } from './outbox-idb-held.ts';
import { DirectGroups, type RoomEstimate } from './outbox-idb-direct.ts';
import { assignInto, deleteOrphanChunks, writeGroup, writeLeft, type ChunkFinder } from './outbox-idb-write.ts';
import {
  CHUNK_MAX_EVENTS,
  DB_VERSION,
  NO_LEFT,
  chunkOf,
  chunkSize,
  commitNow,
  idbName,
  netStats,
  storageError,
  type ChunkAssign,
  type ChunkState,
  type Left,
  type OutboxSchema,
  type StoreName,
  type Tx,
} from './outbox-idb-schema.ts';
import type { SendEvent } from './event-input.ts';
import {
  addSkips,
  assignIds,
  failedEvent,
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

export type IdbDurability = 'relaxed' | 'strict';

/** Events a read() fetches past what it returns, for the next read() of a drain (see IdbOutboxStore.ahead). */
const READ_AHEAD_EVENTS = 12_000;
/** Chunk states fetched per step of a read. */
const STATES_PER_READ = 64;

export class IdbOutboxStore implements OutboxStore {
  /**
   * 4,000 records per request rather than 1,000: fewer requests, acks and removal shares per event.
   * Draining 100,000 events, the page's main thread spent 3.0–3.7 µs per event against 3.6–4.5 µs
   * (CDP ThreadTime, 4 pairs on a loaded machine), and a window of 5 requests holds a typical
   * reconnect backlog. ~450 KB per request for 100-byte events, under maxBatchBytes and the hub's
   * 10,000 records per batch.
   */
  readonly drainBatchRecords = 4_000;
  private db?: IDBPDatabase<OutboxSchema>;
  /** The draining tab's view of the chunks it read (outbox-idb-held.ts). */
  private readonly held = new HeldChunks();
  private opening?: Promise<{ producerId: string; legacyProducerId?: string }>;
  /** The counters (events, bytes) as this store last read them: the direct path's room estimate. */
  private known?: RoomEstimate;
  /** send()'s and sendMany()'s direct path (outbox-idb-direct.ts). */
  private readonly direct = new DirectGroups(
    () => this.known,
    (g) =>
      writeGroup(this.d, this.durability, g, (k) => (this.known = k)).catch((err: unknown) => {
        throw storageError(err);
      }),
  );

  constructor(
    readonly name = 'default',
    private readonly durability: IdbDurability = 'relaxed',
  ) {}

  open(): Promise<{ producerId: string; legacyProducerId?: string }> {
    this.opening ??= this.doOpen().catch((err) => {
      this.opening = undefined;
      throw storageError(err);
    });
    return this.opening;
  }

  private async doOpen(): Promise<{ producerId: string; legacyProducerId?: string }> {
    const db = await openDB<OutboxSchema>(idbName(this.name), DB_VERSION, {
      upgrade(db, oldVersion) {
        if (oldVersion < 1) {
          db.createObjectStore('chunks', { keyPath: 'first' });
          db.createObjectStore('chunkState', { keyPath: 'first' });
          db.createObjectStore('chunkGone');
          db.createObjectStore('failed', { keyPath: 'id' });
          db.createObjectStore('meta');
          db.createObjectStore('positions');
        }
        if (oldVersion < 2) db.createObjectStore('chunkAssign');
      },
      // Another tab wants a newer schema: step aside rather than block it.
      blocking: () => db.close(),
    });
    this.db = db;
    await deleteOrphanChunks(db);
    // Create the producer id once; the readwrite transaction makes racing tabs agree on it.
    const tx = db.transaction('meta', 'readwrite');
    const [old, have, stats, left] = (await Promise.all([tx.store.get('pid'), tx.store.get('bpid'), tx.store.get('stats'), tx.store.get('left')])) as Array<string | undefined>;
    const st = netStats(stats as OutboxStats | undefined, left as Left | undefined);
    this.known = { events: st.events, bytes: st.bytes };
    let pid = have;
    if (!pid) {
      pid = newProducerId();
      await tx.store.put(pid, 'bpid');
    }
    await tx.done;
    // 'pid' without 'bpid' was an older client's (records form): its events drain under it.
    return old && old !== pid ? { producerId: pid, legacyProducerId: old } : { producerId: pid };
  }

  /** The last chunks decoded: chunks never change, and reads that straddle two chunks come back for the same ones. */
  private decoded: Array<{ first: number; events: OutboxEvent[] }> = [];

  private async chunkEvents(store: { get(key: number): Promise<StoredChunk | undefined> }, first: number): Promise<OutboxEvent[] | undefined> {
    const hit = this.decoded.find((c) => c.first === first);
    if (hit) return hit.events;
    const chunk = await store.get(first);
    if (!chunk) return undefined;
    const events = decodeChunk(chunk);
    this.decoded.push({ first, events });
    if (this.decoded.length > 4) this.decoded.shift();
    return events;
  }

  private get d(): IDBPDatabase<OutboxSchema> {
    if (!this.db) throw new ClientError('CLOSED', 'outbox is not open');
    return this.db;
  }

  /**
   * send()'s direct path: the event validated and written into the columns of the open group's chunk
   * (outbox-idb-direct.ts); undefined when the outbox may not have room (the usual path then waits for it).
   */
  sendDirect(topic: string, sub: string, event: SendEvent, now: number, bounds: OutboxBounds): Promise<void> | undefined {
    return this.db ? this.direct.sendOne(topic, sub, event, now, bounds) : undefined;
  }

  /** sendMany()'s: every event validated and written, or none (undefined) when they may not all fit. */
  sendManyDirect(topic: string, sub: string, events: ArrayLike<SendEvent>, now: number, bounds: OutboxBounds): { stored: number; done: Promise<void> } | undefined {
    return this.db ? this.direct.sendMany(topic, sub, events, now, bounds) : undefined;
  }

  async append(entries: NewOutboxEvent[], bounds: OutboxBounds): Promise<Array<OutboxEvent | null>> {
    this.direct.flush(); // its transaction first: events keep call order
    try {
      const tx = this.d.transaction(['chunks', 'chunkState', 'meta'], 'readwrite', { durability: this.durability });
      const meta = tx.objectStore('meta');
      const [stats, left] = (await Promise.all([meta.get('stats'), meta.get('left')])) as [OutboxStats | undefined, Left | undefined];
      const st = netStats(stats, left);
      // In place, as the memory and file stores do, not a copy per event. The chunks keep values, not the
      // record bodies send() encoded: measured in Chromium (bench/README.md, round 9), chunks with bodies
      // cost sendMany and the drain more main-thread CPU per event than the drain's encoding them again.
      const out = assignIds(entries, bounds, st, true);
      this.known = { events: st.events, bytes: st.bytes };
      const accepted = out.filter((e): e is OutboxEvent => e !== null);
      // Raw requests: no promise per request inside the group commit.
      const rawChunks = unwrap(tx.objectStore('chunks'));
      const rawState = unwrap(tx.objectStore('chunkState'));
      for (let i = 0; i < accepted.length; i += CHUNK_MAX_EVENTS) {
        const events = accepted.slice(i, i + CHUNK_MAX_EVENTS);
        rawChunks.put(encodeChunk(events, false));
        rawState.put({ first: events[0].id, last: events[events.length - 1].id, live: events.length });
      }
      // 'stats' counts what appends added; what left is in 'left' (outbox-idb-schema.ts).
      const l = left ?? NO_LEFT;
      unwrap(meta).put({ events: st.events + l.events, bytes: st.bytes + l.bytes, lastId: st.lastId }, 'stats');
      await commitNow(tx);
      return out;
    } catch (err) {
      throw storageError(err);
    }
  }

  /**
   * Events fetched past the last read() result, in the same transaction: a drain reads on from where
   * its last read ended, and one transaction per READ_AHEAD_EVENTS rather than per read() is one
   * fewer transaction in IndexedDB's queue (readwrite transactions over the same stores wait for each
   * read, and reads for them) per few thousand events. Served only to a read() that continues exactly
   * after the last event handed out: a drain session starts at 0, so a new session (after a lease or
   * connection change, when another tab may have drained) never sees an older session's read-ahead.
   * Within a session only this tab, holding the drain lease, removes, fails or assigns, and only
   * events it has read, which are no longer here; another tab's appends come after these events and
   * are read from the database once the read-ahead is used up.
   */
  private ahead?: { after: number; events: OutboxEvent[]; at: number };
  /** The last id the last read() handed out: a read after it continues a drain, and reads ahead. */
  private readTo = -1;

  async read(afterId: number, maxEvents: number): Promise<OutboxEvent[]> {
    // A drain session's first read: what the view held may have changed since (another tab drained).
    if (afterId === 0) this.held.reset();
    const out = await this.readOn(afterId, maxEvents);
    this.readTo = out.length ? out[out.length - 1].id : -1;
    return out;
  }

  private async readOn(afterId: number, maxEvents: number): Promise<OutboxEvent[]> {
    const out: OutboxEvent[] = [];
    const a = this.ahead;
    this.ahead = undefined;
    // A drain's first read fetches only what it asks for: its first batches go out sooner.
    const continues = afterId === this.readTo;
    if (a && a.after === afterId) {
      const end = Math.min(a.events.length, a.at + maxEvents);
      for (let i = a.at; i < end; i++) out.push(a.events[i]);
      if (end < a.events.length) {
        this.ahead = { after: out[out.length - 1].id, events: a.events, at: end };
        return out;
      }
      if (out.length) afterId = out[out.length - 1].id;
    }
    if (out.length >= maxEvents) return out;
    const more = await this.fetch(afterId, maxEvents - out.length + (continues ? READ_AHEAD_EVENTS : 0));
    const take = Math.min(more.length, maxEvents - out.length);
    for (let i = 0; i < take; i++) out.push(more[i]);
    if (take < more.length) this.ahead = { after: out[out.length - 1].id, events: more, at: take };
    return out;
  }

  private async fetch(afterId: number, maxEvents: number): Promise<OutboxEvent[]> {
    this.direct.flush();
    try {
      const out: OutboxEvent[] = [];
      let from = Math.max(0, afterId + 1 - CHUNK_MAX_EVENTS);
      const held = this.held;
      while (out.length < maxEvents) {
        const gen = held.gen;
        const counters = !held.ready;
        const stores: StoreName[] = counters ? ['chunkState', 'chunkGone', 'chunkAssign', 'meta'] : ['chunkState', 'chunkGone', 'chunkAssign'];
        const tx = this.d.transaction(stores, 'readonly');
        // The counters only the draining tab writes, for its view (outbox-idb-held.ts), in the same snapshot.
        const metaRead = counters ? Promise.all([tx.objectStore('meta').get('left'), tx.objectStore('meta').get('pseqs')]) : undefined;
        const states = await tx.objectStore('chunkState').getAll(IDBKeyRange.lowerBound(from), STATES_PER_READ);
        if (!states.length) {
          if (metaRead) await metaRead;
          break;
        }
        // Only the chunks that can fill what is still wanted: fetching (and decoding) every chunk of the
        // page made a drain's reads of 4,000 events decode the whole outbox again and again.
        const wanted: ChunkState[] = [];
        let room = maxEvents - out.length;
        let used = 0;
        for (; used < states.length && room > 0; used++) {
          const s = states[used];
          if (s.last <= afterId) continue;
          wanted.push(s);
          room -= Math.min(s.live, s.last - Math.max(afterId, s.first - 1));
        }
        // The chunk records (large) in a transaction of their own over the chunks store alone, which the
        // drain's assignments and removals do not write: they need not wait for it. Chunks never change,
        // and one with events still to read is not deleted, so the two need not be one snapshot.
        const values = wanted.length ? this.d.transaction('chunks', 'readonly') : undefined;
        const reads = Promise.all([
          Promise.all(wanted.map((s) => this.chunkEvents(values!.store, s.first))),
          Promise.all(wanted.map((s) => (s.live < chunkSize(s) ? tx.objectStore('chunkGone').get(s.first) : undefined))),
          Promise.all(wanted.map((s) => tx.objectStore('chunkAssign').get(s.first))),
          metaRead,
        ]);
        // Every request is issued: let IndexedDB end the transactions now rather than once this page,
        // busy with the drain, has taken the results and gone idle; writes queued behind them start sooner.
        commitNow(tx).catch(() => undefined);
        if (values) commitNow(values).catch(() => undefined);
        const [chunks, gones, assigned, meta] = await reads;
        if (meta) held.learnCounters(gen, meta[0] as Left | undefined, meta[1] as Record<string, number> | undefined);
        for (let i = 0; i < wanted.length; i++) held.learn(gen, wanted[i], gones[i], assigned[i]);
        for (let i = 0; i < wanted.length && out.length < maxEvents; i++) {
          const gone = gones[i]?.length ? new Set(gones[i]) : undefined;
          const as = assigned[i];
          const first = wanted[i].first;
          for (const e of chunks[i] ?? []) {
            if (e.id <= afterId || gone?.has(e.id)) continue;
            const k = e.id - first;
            // In place: the decoded events are this store's own (and the drain's), and an assignment never changes.
            if (as && as.p[k] >= 0) {
              e.p = as.p[k];
              e.seq = as.s[k];
            }
            out.push(e);
            if (out.length >= maxEvents) break;
          }
        }
        if (used === states.length && states.length < STATES_PER_READ) break;
        from = states[used - 1].first + 1;
      }
      return out;
    } catch (err) {
      throw storageError(err);
    }
  }

  /**
   * Assignments are made one call at a time: a call's sequences follow the last one's, and had that
   * one's transaction failed after the next was issued, the next would leave a gap.
   */
  private assigning: Promise<unknown> = Promise.resolve();

  assign(assignments: Assignment[]): Promise<OutboxEvent[]> {
    if (!assignments.length) return Promise.resolve([]);
    const run = this.assigning.then(
      () => this.assignNow(assignments),
      () => this.assignNow(assignments),
    );
    this.assigning = run;
    return run;
  }

  private async assignNow(assignments: Assignment[]): Promise<OutboxEvent[]> {
    const held = this.held;
    try {
      let tx: Tx;
      let found: ChunkFinder;
      let next: Record<string, number>;
      if (held.covers(assignments.map((a) => a.event.id))) {
        // Writes alone (outbox-idb-held.ts): the view knows every chunk, and 'pseqs'.
        tx = this.d.transaction(['chunkAssign', 'meta'], 'readwrite', { durability: this.durability }) as Tx;
        found = { stateOf: (id) => held.stateOf(id), assignOf: (f) => held.assignOf(f), setAssign: (f, as) => held.setAssign(f, as) };
        next = held.pseqs!;
      } else {
        held.reset(); // changed behind the view's back: it starts again at the next read
        tx = this.d.transaction(['chunkState', 'chunkAssign', 'meta'], 'readwrite', { durability: this.durability }) as Tx;
        let lo = Infinity;
        let hi = -Infinity;
        for (const a of assignments) {
          if (a.event.id < lo) lo = a.event.id;
          if (a.event.id > hi) hi = a.event.id;
        }
        const range = IDBKeyRange.bound(Math.max(0, lo + 1 - CHUNK_MAX_EVENTS), hi);
        const [states, keys, lists, pseqs] = await Promise.all([
          tx.objectStore('chunkState').getAll(range),
          tx.objectStore('chunkAssign').getAllKeys(range),
          tx.objectStore('chunkAssign').getAll(range),
          tx.objectStore('meta').get('pseqs') as Promise<Record<string, number> | undefined>,
        ]);
        next = pseqs ?? {};
        const byFirst = new Map<number, ChunkAssign>();
        for (let i = 0; i < keys.length; i++) byFirst.set(keys[i], lists[i]);
        found = {
          stateOf: (id) => {
            const s = chunkOf(states, id);
            return s && id <= s.last ? s : undefined;
          },
          assignOf: (f) => byFirst.get(f),
          setAssign: (f, as) => byFirst.set(f, as),
        };
      }
      const { out, ps, seqs, touched } = assignInto(assignments, found, next);
      const raw = unwrap(tx.objectStore('chunkAssign'));
      for (const first of touched) raw.put(found.assignOf(first)!, first);
      if (touched.size) unwrap(tx.objectStore('meta')).put(next, 'pseqs');
      try {
        await commitNow(tx);
      } catch (err) {
        held.reset(); // the view took changes the database did not
        throw err;
      }
      // Only once stored: the events are the decoded ones (see read), and a drain must never send an
      // assignment that a failed write left unstored. In place, as the memory store does: an object
      // spread per event was the largest cost of assign in a CDP profile.
      for (let i = 0; i < out.length; i++) {
        out[i].p = ps[i];
        out[i].seq = seqs[i];
      }
      return out;
    } catch (err) {
      throw storageError(err);
    }
  }

  /**
   * Marks events as left (and, with `failed`, files them in the failed list), adjusting the counters by
   * exactly the events that were still there. A removal whose chunks the view knows writes without
   * reading (outbox-idb-held.ts); a failure, rare, reads inside its transaction and drops the view.
   */
  private async take(events: OutboxEvent[], failed?: { code: string; message: string }): Promise<void> {
    if (!events.length) return;
    const held = this.held;
    if (!failed && held.covers(events.map((e) => e.id))) return this.takeHeld(events);
    held.reset();
    const stores: StoreName[] = failed ? ['chunks', 'chunkState', 'chunkGone', 'chunkAssign', 'meta', 'failed'] : ['chunks', 'chunkState', 'chunkGone', 'chunkAssign', 'meta'];
    const tx = this.d.transaction(stores, 'readwrite', { durability: this.durability }) as Tx;
    let lo = Infinity;
    let hi = -Infinity;
    for (const e of events) {
      if (e.id < lo) lo = e.id;
      if (e.id > hi) hi = e.id;
    }
    const range = IDBKeyRange.bound(Math.max(0, lo + 1 - CHUNK_MAX_EVENTS), hi);
    const [states, goneKeys, goneLists, leftBefore] = await Promise.all([
      tx.objectStore('chunkState').getAll(range),
      tx.objectStore('chunkGone').getAllKeys(range),
      tx.objectStore('chunkGone').getAll(range),
      tx.objectStore('meta').get('left') as Promise<Left | undefined>,
    ]);
    const goneOf = new Map<number, number[]>();
    for (let i = 0; i < goneKeys.length; i++) goneOf.set(goneKeys[i], goneLists[i]);
    const left: Left = { ...NO_LEFT, ...leftBefore };
    const touched = new Map<ChunkState, Set<number>>();
    const rawFailed = failed ? unwrap(tx.objectStore('failed')) : undefined;
    const skipsRead = failed ? (tx.objectStore('meta').get('skips') as Promise<Record<string, number[]> | undefined>) : undefined;
    const failedNow: OutboxEvent[] = [];
    const now = Date.now();
    for (const e of events) {
      const s = chunkOf(states, e.id);
      if (!s || e.id > s.last) continue; // its chunk is gone already
      let gone = touched.get(s);
      if (!gone) touched.set(s, (gone = new Set(goneOf.get(s.first))));
      if (gone.has(e.id)) continue;
      gone.add(e.id);
      s.live -= 1;
      left.events += 1;
      left.bytes += e.bytes;
      if (rawFailed && failed) {
        // Without its body, and with a value of its own: a view would store its chunk's whole buffer.
        const f = failedEvent(e, failed.code, failed.message, now);
        if (f.rec.v !== null) f.rec = { ...f.rec, v: f.rec.v.slice() };
        rawFailed.put(f);
        failedNow.push(e);
      }
    }
    if (skipsRead && failedNow.length) {
      const skips = (await skipsRead) ?? {};
      addSkips(skips, failedNow);
      unwrap(tx.objectStore('meta')).put(skips, 'skips');
    }
    const { dropped } = writeLeft(tx, states, touched);
    if (dropped.length) this.decoded = this.decoded.filter((c) => !dropped.includes(c.first));
    unwrap(tx.objectStore('meta')).put(left, 'left');
    await commitNow(tx);
  }

  /** A removal from what the view holds: writes only, and the view changed as they are issued. */
  private async takeHeld(events: OutboxEvent[]): Promise<void> {
    const held = this.held;
    const left = held.left!;
    // Not the chunks store: its records go in a transaction of their own, after this one, so that this
    // one does not wait for reads of chunk values (large records) ahead of it, nor assignments for it.
    const tx = this.d.transaction(['chunkState', 'chunkGone', 'chunkAssign', 'meta'], 'readwrite', { durability: this.durability }) as Tx;
    const touched = new Map<ChunkState, Set<number>>();
    let s: ChunkState | undefined;
    let gone: Set<number> | undefined;
    for (const e of events) {
      if (!s || e.id < s.first || e.id > s.last) {
        s = held.stateOf(e.id);
        if (!s) continue; // its chunk is gone already
        gone = touched.get(s);
        if (!gone) touched.set(s, (gone = held.goneOf(s.first)));
      }
      if (gone!.has(e.id)) continue;
      gone!.add(e.id);
      s.live -= 1;
      left.events += 1;
      left.bytes += e.bytes;
    }
    const { dropped, runs } = writeLeft(tx, held.states, touched);
    held.drop(dropped);
    if (dropped.length) this.decoded = this.decoded.filter((c) => !dropped.includes(c.first));
    unwrap(tx.objectStore('meta')).put({ events: left.events, bytes: left.bytes }, 'left');
    try {
      await commitNow(tx);
    } catch (err) {
      held.reset();
      throw err;
    }
    if (runs.length && this.db) {
      // Only once their states are gone: a chunk record never goes before its state. If this never
      // runs (a crash), open() deletes them.
      const del = this.d.transaction('chunks', 'readwrite', { durability: 'relaxed' });
      for (const r of runs) void del.store.delete(r).catch(() => undefined);
      commitNow(del).catch(() => undefined);
    }
  }

  async remove(events: OutboxEvent[]): Promise<void> {
    try {
      await this.take(events);
    } catch (err) {
      throw storageError(err);
    }
  }

  async fail(events: OutboxEvent[], code: string, message: string): Promise<void> {
    try {
      await this.take(events, { code, message });
    } catch (err) {
      throw storageError(err);
    }
  }

  async failed(): Promise<FailedEvent[]> {
    return this.d.getAll('failed');
  }

  async skipped(): Promise<Record<string, number[]>> {
    return ((await this.d.get('meta', 'skips')) as Record<string, number[]> | undefined) ?? {};
  }

  async clearFailed(): Promise<void> {
    await this.d.clear('failed');
  }

  async stats(): Promise<OutboxStats> {
    this.direct.flush(); // a transaction after the open group's sees it
    const tx = this.d.transaction('meta', 'readonly');
    const [stats, left] = await Promise.all([tx.store.get('stats'), tx.store.get('left')]);
    return netStats(stats as OutboxStats | undefined, left as Left | undefined);
  }

  async countThrough(maxId: number): Promise<number> {
    if (maxId <= 0) return 0;
    this.direct.flush();
    // The draining tab knows of events still there without a transaction: flush() asks after every
    // removal, and each read over these stores would hold up the drain's next write. Only "none left"
    // needs the database. (A lower bound, which is all flush() asks: whether any is left.)
    const known = this.held.liveThrough(maxId);
    if (known > 0) return known;
    // Chunks whose events have all left are deleted, so these are the chunks with work left. One step,
    // committed at once: flush() asks after every removal, and a read over these stores holds up the
    // drain's next write until it ends. The gone lists that may matter are those of the chunks that can
    // straddle maxId (first > maxId - CHUNK_MAX_EVENTS): at most a few small records.
    const tx = this.d.transaction(['chunkState', 'chunkGone'], 'readonly');
    const near = IDBKeyRange.bound(Math.max(0, maxId + 1 - CHUNK_MAX_EVENTS), maxId);
    const reads = Promise.all([tx.objectStore('chunkState').getAll(IDBKeyRange.upperBound(maxId)), tx.objectStore('chunkGone').getAllKeys(near), tx.objectStore('chunkGone').getAll(near)]);
    commitNow(tx).catch(() => undefined);
    const [states, goneKeys, goneLists] = await reads;
    let n = 0;
    for (const s of states) {
      if (s.last <= maxId) n += s.live;
      else {
        // The one chunk that straddles maxId: count its events up to maxId that are still there.
        const at = goneKeys.indexOf(s.first);
        const gone = new Set(at >= 0 ? goneLists[at] : undefined);
        for (let id = s.first; id <= maxId; id++) if (!gone.has(id)) n++;
      }
    }
    return n;
  }

  async loadPositions(name: string): Promise<Positions | undefined> {
    return this.d.get('positions', name);
  }

  async savePositions(name: string, positions: Positions): Promise<void> {
    await this.d.put('positions', positions, name);
  }

  async close(): Promise<void> {
    if (this.db) this.direct.flush(); // issued before the database closes: it still commits
    this.held.reset();
    this.ahead = undefined;
    this.readTo = -1;
    this.db?.close();
    this.db = undefined;
    this.opening = undefined;
  }
}
