/**
 * The browser outbox: one IndexedDB database per outbox name, shared by every
 * tab of the origin (tabs.ts makes sure only one of them drains it).
 *
 * Object stores:
 *   chunks      key first id  the events of one group commit as one record, in
 *                             columns (outbox-idb-chunk.ts), written once. One
 *                             record per commit, not per event: Chromium pays
 *                             ~50 µs per record put, which alone would cap
 *                             sends near 15,000/s; and columns, not objects:
 *                             structured clone of thousands of small objects
 *                             (and one ArrayBuffer per value) costs more.
 *   chunkState  key first id  { first, last, live }: how many of a chunk's
 *                             events are still there; a chunk whose events have
 *                             all left (acked or failed) is deleted with its state
 *   chunkGone   key first id  the ids of a chunk's events that have left, kept
 *                             apart so that counting reads only small records
 *   chunkAssign key first id  { p, s }: partition and sequence of each of the
 *                             chunk's events the drainer assigned (-1: not yet),
 *                             kept apart since chunks are written once
 *   failed      keyPath id    events the hub refused for good
 *   meta        out-of-line   'bpid' (producer id), 'pseqs' (topic/partition →
 *                             next seq), 'stats'; an outbox an older client
 *                             wrote has 'pid' (its producer id, for its events
 *                             without a partition: records form) and no 'bpid'
 *   positions   out-of-line   subscription name → partition → next offset
 *
 * An append is one readwrite transaction over chunks, chunkState and meta:
 * ids, sequences and counters are read and written together, and IndexedDB
 * runs readwrite transactions over the same stores one at a time, across
 * tabs too, so two tabs can never hand out the same id or sequence.
 *
 * Durability (the transaction's `durability` hint):
 * - 'relaxed' (default): the commit is reported once the browser has handed
 *   the data to the operating system. It survives reloads, tab and browser
 *   crashes; an OS crash or power cut may lose the last moments of sends.
 * - 'strict': the commit waits for the data to be flushed to disk, so it also
 *   survives power loss, at the cost of one flush per group commit.
 */
import { openDB, unwrap, type DBSchema, type IDBPDatabase, type IDBPTransaction } from 'idb';
import { ClientError } from './errors.ts';
import { decodeChunk, encodeChunk, type StoredChunk } from './outbox-idb-chunk.ts';
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

interface ChunkState {
  first: number;
  last: number;
  /** Events of the chunk still in the outbox. */
  live: number;
}

const chunkSize = (s: ChunkState): number => s.last - s.first + 1;

/** Index in `states` (sorted by first) of the last state starting at or before `id`; -1 when none does. */
function indexOfFirst(states: readonly ChunkState[], id: number): number {
  let lo = 0;
  let hi = states.length - 1;
  let at = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (states[mid].first <= id) {
      at = mid;
      lo = mid + 1;
    } else hi = mid - 1;
  }
  return at;
}

/** The state of the chunk that would hold `id` (the caller checks `last`), by binary search. */
function chunkOf(states: readonly ChunkState[], id: number): ChunkState | undefined {
  const i = indexOfFirst(states, id);
  return i < 0 ? undefined : states[i];
}

/**
 * Per event of a chunk (index id - first): partition and sequence, -1 until
 * assigned. Typed arrays since version 3 (cheaper to clone than arrays of
 * numbers); version 2 wrote arrays, which read the same.
 */
interface ChunkAssign {
  p: Int32Array | number[];
  s: Float64Array | number[];
}

interface OutboxSchema extends DBSchema {
  chunks: { key: number; value: StoredChunk };
  chunkAssign: { key: number; value: ChunkAssign };
  chunkState: { key: number; value: ChunkState };
  chunkGone: { key: number; value: number[] };
  failed: { key: number; value: FailedEvent };
  meta: { key: string; value: unknown };
  positions: { key: string; value: Positions };
}

/**
 * 2: chunkAssign (partitions chosen by the client, batch form).
 * 3: chunks in columns (outbox-idb-chunk.ts). No store changes: older chunks
 *    still read. The bump keeps a tab of an older client, which could not read
 *    the new chunks, out of the database (its open fails; its drain stops).
 * 4: a chunk whose events all have bodies keeps no separate values column
 *    (values are read from the bodies). No store changes; the bump, as for 3.
 */
const DB_VERSION = 4;
/** Events per chunk record; a chunk holding id x therefore has first > x - CHUNK_MAX_EVENTS. */
const CHUNK_MAX_EVENTS = 2_000;
/** Events a read() fetches past what it returns, for the next read() of a drain (see IdbOutboxStore.ahead). */
const READ_AHEAD_EVENTS = 12_000;
/** Chunk states fetched per step of a read. */
const STATES_PER_READ = 64;
type StoreName = 'chunks' | 'chunkState' | 'chunkGone' | 'meta' | 'failed' | 'chunkAssign';
type Tx = IDBPTransaction<OutboxSchema, StoreName[], 'readwrite'>;

/** The database name for an outbox name; exported so that tests and tools can find it. */
const idbName = (name: string): string => `tributary-outbox:${name}`;

function storageError(err: unknown): ClientError {
  if (err instanceof ClientError) return err;
  const name = (err as { name?: string } | null)?.name;
  if (name === 'QuotaExceededError') return new ClientError('OUTBOX_QUOTA', 'IndexedDB quota exceeded: the browser refused to store more', { cause: err });
  const msg = err instanceof Error ? err.message : String(err);
  return new ClientError('OUTBOX_STORAGE', `IndexedDB failed: ${msg}`, { cause: err });
}

/**
 * Commits a readwrite transaction once its requests are issued. Without
 * commit(), the transaction commits only after the page has received its
 * last request's result and gone idle: one more round trip through a main
 * thread that is busy with a send burst or a drain.
 */
function commitNow(tx: { done: Promise<void> }): Promise<void> {
  (unwrap(tx as unknown as Tx) as IDBTransaction).commit();
  return tx.done;
}

/**
 * Writes what a removal changed: the touched chunks' states and gone lists, and the chunks whose events
 * have all left deleted, in runs of neighbours (in `states`, sorted by first, nothing between them is
 * left): one range delete per store and run instead of four deletes per chunk. Returns the deleted
 * chunks' keys.
 */
function writeLeft(tx: Tx, states: readonly ChunkState[], touched: Map<ChunkState, Set<number>>): number[] {
  const rawChunks = unwrap(tx.objectStore('chunks'));
  const rawState = unwrap(tx.objectStore('chunkState'));
  const rawGone = unwrap(tx.objectStore('chunkGone'));
  const rawAssign = unwrap(tx.objectStore('chunkAssign'));
  let runFrom = -1;
  let runTo = -1;
  const dropped: number[] = [];
  const endRun = () => {
    if (runFrom < 0) return;
    const keys = IDBKeyRange.bound(runFrom, runTo);
    rawChunks.delete(keys);
    rawState.delete(keys);
    rawGone.delete(keys);
    rawAssign.delete(keys);
    runFrom = -1;
  };
  for (const s of states) {
    const gone = touched.get(s);
    if (gone && s.live <= 0) {
      if (runFrom < 0) runFrom = s.first;
      runTo = s.first;
      dropped.push(s.first);
      continue;
    }
    endRun();
    if (!gone) continue;
    rawState.put(s);
    rawGone.put([...gone], s.first);
  }
  endRun();
  return dropped;
}

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
  private opening?: Promise<{ producerId: string; legacyProducerId?: string }>;

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
    // Create the producer id once; the readwrite transaction makes racing tabs agree on it.
    const tx = db.transaction('meta', 'readwrite');
    const [old, have] = (await Promise.all([tx.store.get('pid'), tx.store.get('bpid')])) as Array<string | undefined>;
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

  async append(entries: NewOutboxEvent[], bounds: OutboxBounds): Promise<Array<OutboxEvent | null>> {
    try {
      const tx = this.d.transaction(['chunks', 'chunkState', 'meta'], 'readwrite', { durability: this.durability });
      const meta = tx.objectStore('meta');
      const stats = (await meta.get('stats')) as OutboxStats | undefined;
      const st: OutboxStats = stats ?? { events: 0, bytes: 0, lastId: 0 };
      // In place, as the memory and file stores do, not a copy per event. The chunks keep values, not the
      // record bodies send() encoded: measured in Chromium (bench/README.md, round 9), chunks with bodies
      // cost sendMany and the drain more main-thread CPU per event than the drain's encoding them again.
      const out = assignIds(entries, bounds, st, true);
      const accepted = out.filter((e): e is OutboxEvent => e !== null);
      // Raw requests: no promise per request inside the group commit.
      const rawChunks = unwrap(tx.objectStore('chunks'));
      const rawState = unwrap(tx.objectStore('chunkState'));
      for (let i = 0; i < accepted.length; i += CHUNK_MAX_EVENTS) {
        const events = accepted.slice(i, i + CHUNK_MAX_EVENTS);
        rawChunks.put(encodeChunk(events, false));
        rawState.put({ first: events[0].id, last: events[events.length - 1].id, live: events.length });
      }
      const rawMeta = unwrap(meta);
      rawMeta.put(st, 'stats');
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
    try {
      const out: OutboxEvent[] = [];
      let from = Math.max(0, afterId + 1 - CHUNK_MAX_EVENTS);
      while (out.length < maxEvents) {
        const tx = this.d.transaction(['chunks', 'chunkState', 'chunkGone', 'chunkAssign'], 'readonly');
        const states = await tx.objectStore('chunkState').getAll(IDBKeyRange.lowerBound(from), STATES_PER_READ);
        if (!states.length) break;
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
        const reads = Promise.all([
          Promise.all(wanted.map((s) => this.chunkEvents(tx.objectStore('chunks'), s.first))),
          Promise.all(wanted.map((s) => (s.live < chunkSize(s) ? tx.objectStore('chunkGone').get(s.first) : undefined))),
          Promise.all(wanted.map((s) => tx.objectStore('chunkAssign').get(s.first))),
        ]);
        // Every request is issued: let IndexedDB end the transaction now rather than once this page,
        // busy with the drain, has taken the results and gone idle; writes queued behind it start sooner.
        commitNow(tx).catch(() => undefined);
        const [chunks, gones, assigned] = await reads;
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

  async assign(assignments: Assignment[]): Promise<OutboxEvent[]> {
    if (!assignments.length) return [];
    try {
      const tx = this.d.transaction(['chunkState', 'chunkAssign', 'meta'], 'readwrite', { durability: this.durability });
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
      const next = pseqs ?? {};
      const byFirst = new Map<number, ChunkAssign>();
      for (let i = 0; i < keys.length; i++) byFirst.set(keys[i], lists[i]);
      // Next sequence per topic, by partition: read from `next` on first use, written back at the end. A
      // `topic/p` string built and looked up per event was the largest JS cost of a drain (CDP profile).
      const counters = new Map<string, number[]>();
      const touched = new Set<number>();
      const out: OutboxEvent[] = [];
      const ps: number[] = [];
      const seqs: number[] = [];
      let si = 0;
      for (const a of assignments) {
        const e = a.event;
        // Assignments come in id order and states sorted by first: a forward pointer finds the chunk.
        if (si < states.length && states[si].first > e.id) si = 0;
        while (si + 1 < states.length && states[si + 1].first <= e.id) si++;
        const s = states[si];
        if (!s || s.first > e.id || e.id > s.last) continue; // gone already
        let as = byFirst.get(s.first);
        if (!as) {
          const n = chunkSize(s);
          byFirst.set(s.first, (as = { p: new Int32Array(n).fill(-1), s: new Float64Array(n).fill(-1) }));
        }
        const k = e.id - s.first;
        if (as.p[k] < 0) {
          let c = counters.get(e.topic);
          if (!c) counters.set(e.topic, (c = []));
          const seq = c[a.p] ?? next[`${e.topic}/${a.p}`] ?? 0;
          c[a.p] = seq + 1;
          as.p[k] = a.p;
          as.s[k] = seq;
          touched.add(s.first);
        }
        out.push(e);
        ps.push(as.p[k]);
        seqs.push(as.s[k]);
      }
      for (const [topic, c] of counters) c.forEach((n, p) => (next[`${topic}/${p}`] = n));
      const raw = unwrap(tx.objectStore('chunkAssign'));
      for (const first of touched) raw.put(byFirst.get(first)!, first);
      if (touched.size) unwrap(tx.objectStore('meta')).put(next, 'pseqs');
      await commitNow(tx);
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
   * Marks events as left (and, with `failed`, files them in the failed list),
   * adjusting the counters by exactly the events that were still there.
   */
  private async take(events: OutboxEvent[], failed?: { code: string; message: string }): Promise<void> {
    if (!events.length) return;
    const stores: StoreName[] = failed ? ['chunks', 'chunkState', 'chunkGone', 'chunkAssign', 'meta', 'failed'] : ['chunks', 'chunkState', 'chunkGone', 'chunkAssign', 'meta'];
    const tx = this.d.transaction(stores, 'readwrite', { durability: this.durability }) as Tx;
    let lo = Infinity;
    let hi = -Infinity;
    for (const e of events) {
      if (e.id < lo) lo = e.id;
      if (e.id > hi) hi = e.id;
    }
    const range = IDBKeyRange.bound(Math.max(0, lo + 1 - CHUNK_MAX_EVENTS), hi);
    const [states, goneKeys, goneLists, stats] = await Promise.all([
      tx.objectStore('chunkState').getAll(range),
      tx.objectStore('chunkGone').getAllKeys(range),
      tx.objectStore('chunkGone').getAll(range),
      tx.objectStore('meta').get('stats') as Promise<OutboxStats | undefined>,
    ]);
    const goneOf = new Map<number, number[]>();
    for (let i = 0; i < goneKeys.length; i++) goneOf.set(goneKeys[i], goneLists[i]);
    const st: OutboxStats = stats ?? { events: 0, bytes: 0, lastId: 0 };
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
      st.events -= 1;
      st.bytes -= e.bytes;
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
    const dropped = writeLeft(tx, states, touched);
    if (dropped.length) this.decoded = this.decoded.filter((c) => !dropped.includes(c.first));
    unwrap(tx.objectStore('meta')).put(st, 'stats');
    await commitNow(tx);
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
    const s = (await this.d.get('meta', 'stats')) as OutboxStats | undefined;
    return s ?? { events: 0, bytes: 0, lastId: 0 };
  }

  async countThrough(maxId: number): Promise<number> {
    if (maxId <= 0) return 0;
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
    this.ahead = undefined;
    this.readTo = -1;
    this.db?.close();
    this.db = undefined;
    this.opening = undefined;
  }
}
