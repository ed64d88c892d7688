/**
 * The IndexedDB outbox's database: its object stores, the records in them,
 * and the helpers every transaction over them uses (outbox-idb.ts, the store;
 * outbox-idb-held.ts, the drain's view of the chunks it holds).
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
 *                             next seq), 'stats' (what appends added: events,
 *                             bytes, last id), 'left' (what left by acks and
 *                             failures: events, bytes; absent = none), 'skips';
 *                             an outbox an older client wrote has 'pid' (its
 *                             producer id, for its events without a partition:
 *                             records form) and no 'bpid'
 *   positions   out-of-line   subscription name → partition → next offset
 *
 * 'stats' and 'left' are apart (version 5) so that a removal writes what it
 * knows without reading first: appends (any tab) write only 'stats', the
 * draining tab only 'left', and the outbox holds stats - left. A version-4
 * outbox kept 'stats' net and no 'left': the same sum.
 */
import { unwrap, type DBSchema, type IDBPTransaction } from 'idb';
import { ClientError } from './errors.ts';
import type { StoredChunk } from './outbox-idb-chunk.ts';
import type { FailedEvent, OutboxStats, Positions } from './outbox.ts';

export interface ChunkState {
  first: number;
  last: number;
  /** Events of the chunk still in the outbox. */
  live: number;
}

/**
 * Per event of a chunk (index id - first): partition and sequence, -1 until
 * assigned. Typed arrays since version 3 (cheaper to clone than arrays of
 * numbers); version 2 wrote arrays, which read the same.
 */
export interface ChunkAssign {
  p: Int32Array | number[];
  s: Float64Array | number[];
}

/** What left the outbox (meta 'left'), counted up. */
export interface Left {
  events: number;
  bytes: number;
}

export interface OutboxSchema extends DBSchema {
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
 * 5: meta 'left' beside 'stats' (see above). No store changes; the bump keeps
 *    a version-4 tab, which would count removals into 'stats', out.
 */
export const DB_VERSION = 5;
/** Events per chunk record; a chunk holding id x therefore has first > x - CHUNK_MAX_EVENTS. */
export const CHUNK_MAX_EVENTS = 2_000;
export type StoreName = 'chunks' | 'chunkState' | 'chunkGone' | 'meta' | 'failed' | 'chunkAssign';
export type Tx = IDBPTransaction<OutboxSchema, StoreName[], 'readwrite'>;

export const NO_LEFT: Readonly<Left> = { events: 0, bytes: 0 };
export const chunkSize = (s: ChunkState): number => s.last - s.first + 1;

/** The database name for an outbox name; exported so that tests and tools can find it. */
export const idbName = (name: string): string => `tributary-outbox:${name}`;

/** The outbox's counters: what appends added less what left. */
export function netStats(stats: OutboxStats | undefined, left: Left | undefined): OutboxStats {
  const st = stats ?? { events: 0, bytes: 0, lastId: 0 };
  const l = left ?? NO_LEFT;
  return { events: st.events - l.events, bytes: st.bytes - l.bytes, lastId: st.lastId };
}

export function storageError(err: unknown): ClientError {
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
export function commitNow(tx: { done: Promise<void> }): Promise<void> {
  (unwrap(tx as unknown as Tx) as IDBTransaction).commit();
  return tx.done;
}

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
export function chunkOf(states: readonly ChunkState[], id: number): ChunkState | undefined {
  const i = indexOfFirst(states, id);
  return i < 0 ? undefined : states[i];
}
