/**
 * What the IndexedDB outbox's assignments and removals write (outbox-idb.ts
 * issues the transactions): sequences into the chunks' assignment arrays,
 * the states and gone lists a removal changed, and chunks deleted whole.
 */
import { unwrap, type IDBPDatabase } from 'idb';
import { ClientError } from './errors.ts';
import type { DirectGroup, RoomEstimate } from './outbox-idb-direct.ts';
import { NO_LEFT, chunkSize, commitNow, netStats, type ChunkAssign, type ChunkState, type Left, type OutboxSchema, type Tx } from './outbox-idb-schema.ts';
import type { Assignment, OutboxEvent, OutboxStats } from './outbox.ts';

/** Where assignInto finds and keeps chunks' states and assignments. */
export interface ChunkFinder {
  /** The state of the chunk holding `id`; undefined when it is gone. */
  stateOf(id: number): ChunkState | undefined;
  assignOf(first: number): ChunkAssign | undefined;
  setAssign(first: number, as: ChunkAssign): void;
}

/**
 * Gives each event not assigned yet its partition and the next sequence (from `next`, per
 * topic/partition, updated in place), in the chunks' assignment arrays. Returns the events still there
 * with what they have, and the chunks whose arrays changed.
 */
export function assignInto(assignments: Assignment[], found: ChunkFinder, next: Record<string, number>) {
  // Next sequence per topic, by partition: read from `next` on first use, written back at the end. A
  // `topic/p` string built and looked up per event was the largest JS cost of a drain (CDP profile).
  const counters = new Map<string, number[]>();
  const touched = new Set<number>();
  const out: OutboxEvent[] = [];
  const ps: number[] = [];
  const seqs: number[] = [];
  let s: ChunkState | undefined;
  let as: ChunkAssign | undefined;
  for (const a of assignments) {
    const e = a.event;
    if (!s || e.id < s.first || e.id > s.last) {
      s = found.stateOf(e.id);
      if (!s) continue; // gone already
      as = found.assignOf(s.first);
      if (!as) {
        const n = chunkSize(s);
        found.setAssign(s.first, (as = { p: new Int32Array(n).fill(-1), s: new Float64Array(n).fill(-1) }));
      }
    }
    const k = e.id - s.first;
    if (as!.p[k] < 0) {
      let c = counters.get(e.topic);
      if (!c) counters.set(e.topic, (c = []));
      const seq = c[a.p] ?? next[`${e.topic}/${a.p}`] ?? 0;
      c[a.p] = seq + 1;
      as!.p[k] = a.p;
      as!.s[k] = seq;
      touched.add(s.first);
    }
    out.push(e);
    ps.push(as!.p[k]);
    seqs.push(as!.s[k]);
  }
  for (const [topic, c] of counters) c.forEach((n, p) => (next[`${topic}/${p}`] = n));
  return { out, ps, seqs, touched };
}

/**
 * Writes what a removal changed: the touched chunks' states and gone lists, and the chunks whose events
 * have all left deleted, in runs of neighbours (in `states`, sorted by first, nothing between them is
 * left): one range delete per store and run instead of four deletes per chunk. The chunk records
 * themselves too when `tx` has the chunks store, else the caller deletes them (`deleteChunks`). Returns
 * the deleted chunks' keys and runs.
 */
export function writeLeft(tx: Tx, states: readonly ChunkState[], touched: Map<ChunkState, Set<number>>): { dropped: number[]; runs: IDBKeyRange[] } {
  const rawChunks = tx.objectStoreNames.contains('chunks') ? unwrap(tx.objectStore('chunks')) : undefined;
  const rawState = unwrap(tx.objectStore('chunkState'));
  const rawGone = unwrap(tx.objectStore('chunkGone'));
  const rawAssign = unwrap(tx.objectStore('chunkAssign'));
  let runFrom = -1;
  let runTo = -1;
  const dropped: number[] = [];
  const runs: IDBKeyRange[] = [];
  const endRun = () => {
    if (runFrom < 0) return;
    const keys = IDBKeyRange.bound(runFrom, runTo);
    runs.push(keys);
    rawChunks?.delete(keys);
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
  return { dropped, runs };
}

/**
 * Deletes chunk records whose state is gone: after a removal that left them to a transaction of their
 * own, which a crash may have kept from running (at open). Their events have all left; nothing reads a
 * chunk without its state.
 */
export async function deleteOrphanChunks(db: IDBPDatabase<OutboxSchema>): Promise<void> {
  const tx = db.transaction(['chunks', 'chunkState'], 'readwrite');
  const [chunkKeys, stateKeys] = await Promise.all([tx.objectStore('chunks').getAllKeys(), tx.objectStore('chunkState').getAllKeys()]);
  const live = new Set(stateKeys);
  const raw = unwrap(tx.objectStore('chunks'));
  for (const k of chunkKeys) if (!live.has(k)) raw.delete(k);
  await commitNow(tx);
}

/**
 * One group of the direct path (outbox-idb-direct.ts) as one readwrite transaction, as `append` writes
 * its events: the counters read, the group's chunks numbered from them and put with their states, the
 * counters written. A group that no longer fits the bounds (another tab's appends came first) fails
 * with OUTBOX_FULL and writes nothing. `known` gets the counters as read, with the group.
 */
export async function writeGroup(db: IDBPDatabase<OutboxSchema>, durability: 'relaxed' | 'strict', g: DirectGroup, known: (k: RoomEstimate) => void): Promise<void> {
  const tx = db.transaction(['chunks', 'chunkState', 'meta'], 'readwrite', { durability });
  const meta = tx.objectStore('meta');
  const [stats, left] = (await Promise.all([meta.get('stats'), meta.get('left')])) as [OutboxStats | undefined, Left | undefined];
  const st = netStats(stats, left);
  if (st.events + g.count > g.bounds.maxEvents || st.bytes + g.bytes > g.bounds.maxBytes) {
    known({ events: st.events, bytes: st.bytes });
    tx.done.catch(() => undefined);
    tx.abort();
    throw new ClientError('OUTBOX_FULL', `the outbox filled up (another tab's sends) while ${g.count} events were gathered for it`);
  }
  const rawChunks = unwrap(tx.objectStore('chunks'));
  const rawState = unwrap(tx.objectStore('chunkState'));
  let first = st.lastId + 1;
  for (const c of g.chunks) {
    if (c.n === 0) continue;
    rawChunks.put(c.finish(first));
    rawState.put({ first, last: first + c.n - 1, live: c.n });
    first += c.n;
  }
  const l = left ?? NO_LEFT;
  unwrap(meta).put({ events: st.events + g.count + l.events, bytes: st.bytes + g.bytes + l.bytes, lastId: first - 1 }, 'stats');
  known({ events: st.events + g.count, bytes: st.bytes + g.bytes });
  await commitNow(tx);
}
