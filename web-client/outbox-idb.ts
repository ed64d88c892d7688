/**
 * The browser outbox: one IndexedDB database per outbox name, shared by every
 * tab of the origin (tabs.ts makes sure only one of them drains it).
 *
 * Object stores:
 *   events     keyPath id   the pending events, in append order
 *   failed     keyPath id   events the hub refused for good
 *   meta       out-of-line  'pid' (producer id), 'seqs' (topic → next seq), 'stats'
 *   positions  out-of-line  subscription name → partition → next offset
 *
 * An append is one readwrite transaction over events + meta: ids, sequences
 * and counters are read and written together, and IndexedDB runs readwrite
 * transactions over the same stores one at a time, across tabs too, so two
 * tabs can never hand out the same sequence.
 *
 * Durability (the transaction's `durability` hint):
 * - 'relaxed' (default): the commit is reported once the browser has handed
 *   the data to the operating system. It survives reloads, tab and browser
 *   crashes; an OS crash or power cut may lose the last moments of sends.
 * - 'strict': the commit waits for the data to be flushed to disk, so it also
 *   survives power loss, at the cost of one flush per group commit.
 */
import { openDB, unwrap, type DBSchema, type IDBPDatabase } from 'idb';
import { ClientError } from './errors.ts';
import {
  assignSequences,
  newProducerId,
  type FailedEvent,
  type NewOutboxEvent,
  type OutboxBounds,
  type OutboxEvent,
  type OutboxStats,
  type OutboxStore,
  type Positions,
} from './outbox.ts';

export type IdbDurability = 'relaxed' | 'strict';

interface OutboxSchema extends DBSchema {
  events: { key: number; value: OutboxEvent };
  failed: { key: number; value: FailedEvent };
  meta: { key: string; value: unknown };
  positions: { key: string; value: Positions };
}

const DB_VERSION = 1;

/** The database name for an outbox name; exported so that tests and tools can find it. */
export const idbName = (name: string): string => `tributary-outbox:${name}`;

function storageError(err: unknown): ClientError {
  if (err instanceof ClientError) return err;
  const name = (err as { name?: string } | null)?.name;
  if (name === 'QuotaExceededError') return new ClientError('OUTBOX_QUOTA', 'IndexedDB quota exceeded: the browser refused to store more', { cause: err });
  const msg = err instanceof Error ? err.message : String(err);
  return new ClientError('OUTBOX_STORAGE', `IndexedDB failed: ${msg}`, { cause: err });
}

export class IdbOutboxStore implements OutboxStore {
  private db?: IDBPDatabase<OutboxSchema>;
  private opening?: Promise<{ producerId: string }>;

  constructor(
    readonly name = 'default',
    private readonly durability: IdbDurability = 'relaxed',
  ) {}

  open(): Promise<{ producerId: string }> {
    this.opening ??= this.doOpen().catch((err) => {
      this.opening = undefined;
      throw storageError(err);
    });
    return this.opening;
  }

  private async doOpen(): Promise<{ producerId: string }> {
    const db = await openDB<OutboxSchema>(idbName(this.name), DB_VERSION, {
      upgrade(db) {
        db.createObjectStore('events', { keyPath: 'id' });
        db.createObjectStore('failed', { keyPath: 'id' });
        db.createObjectStore('meta');
        db.createObjectStore('positions');
      },
      // Another tab wants a newer schema: step aside rather than block it.
      blocking: () => db.close(),
    });
    this.db = db;
    // Create the producer id once; the readwrite transaction makes racing tabs agree on it.
    const tx = db.transaction('meta', 'readwrite');
    let pid = (await tx.store.get('pid')) as string | undefined;
    if (!pid) {
      pid = newProducerId();
      await tx.store.put(pid, 'pid');
    }
    await tx.done;
    return { producerId: pid };
  }

  private get d(): IDBPDatabase<OutboxSchema> {
    if (!this.db) throw new ClientError('CLOSED', 'outbox is not open');
    return this.db;
  }

  async append(entries: NewOutboxEvent[], bounds: OutboxBounds): Promise<Array<OutboxEvent | null>> {
    try {
      const tx = this.d.transaction(['events', 'meta'], 'readwrite', { durability: this.durability });
      const meta = tx.objectStore('meta');
      const [stats, seqs] = await Promise.all([meta.get('stats') as Promise<OutboxStats | undefined>, meta.get('seqs') as Promise<Record<string, number> | undefined>]);
      const st: OutboxStats = stats ?? { events: 0, bytes: 0, lastId: 0 };
      const sq: Record<string, number> = seqs ?? {};
      const out = assignSequences(entries, bounds, st, (t) => sq[t] ?? 0, (t, n) => (sq[t] = n));
      // Raw puts: thousands per group commit, no promise per request.
      const raw = unwrap(tx.objectStore('events'));
      for (const e of out) if (e) raw.put(e);
      const rawMeta = unwrap(meta);
      rawMeta.put(st, 'stats');
      rawMeta.put(sq, 'seqs');
      await tx.done;
      return out;
    } catch (err) {
      throw storageError(err);
    }
  }

  async read(afterId: number, maxEvents: number): Promise<OutboxEvent[]> {
    try {
      return await this.d.getAll('events', IDBKeyRange.lowerBound(afterId, true), maxEvents);
    } catch (err) {
      throw storageError(err);
    }
  }

  /** Deletes the events that are still there and adjusts the counters by exactly those. */
  private async take(events: OutboxEvent[], failed?: { code: string; message: string }): Promise<void> {
    if (!events.length) return;
    const stores = failed ? (['events', 'meta', 'failed'] as const) : (['events', 'meta'] as const);
    const tx = this.d.transaction(stores as unknown as Array<'events' | 'meta' | 'failed'>, 'readwrite', { durability: this.durability });
    let lo = Infinity;
    let hi = -Infinity;
    for (const e of events) {
      if (e.id < lo) lo = e.id;
      if (e.id > hi) hi = e.id;
    }
    const evStore = tx.objectStore('events');
    const [present, stats] = await Promise.all([evStore.getAllKeys(IDBKeyRange.bound(lo, hi)), tx.objectStore('meta').get('stats') as Promise<OutboxStats | undefined>]);
    const here = new Set(present);
    const st: OutboxStats = stats ?? { events: 0, bytes: 0, lastId: 0 };
    const raw = unwrap(evStore);
    const rawFailed = failed ? unwrap(tx.objectStore('failed')) : undefined;
    const now = Date.now();
    for (const e of events) {
      if (!here.has(e.id)) continue;
      raw.delete(e.id);
      st.events -= 1;
      st.bytes -= e.bytes;
      if (rawFailed && failed) rawFailed.put({ ...e, code: failed.code, message: failed.message, failedAt: now });
    }
    unwrap(tx.objectStore('meta')).put(st, 'stats');
    await tx.done;
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

  async clearFailed(): Promise<void> {
    await this.d.clear('failed');
  }

  async stats(): Promise<OutboxStats> {
    const s = (await this.d.get('meta', 'stats')) as OutboxStats | undefined;
    return s ?? { events: 0, bytes: 0, lastId: 0 };
  }

  async countThrough(maxId: number): Promise<number> {
    if (maxId <= 0) return 0;
    return this.d.count('events', IDBKeyRange.upperBound(maxId));
  }

  async loadPositions(name: string): Promise<Positions | undefined> {
    return this.d.get('positions', name);
  }

  async savePositions(name: string, positions: Positions): Promise<void> {
    await this.d.put('positions', positions, name);
  }

  async close(): Promise<void> {
    this.db?.close();
    this.db = undefined;
    this.opening = undefined;
  }
}
