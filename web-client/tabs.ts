/**
 * Tabs of one origin sharing one outbox (IndexedDB is per origin): exactly
 * one of them drains it at a time. The drainer holds a Web Lock named after
 * the outbox for as long as it lives; the others queue on the same lock, so
 * when the draining tab closes or crashes the browser releases its lock and
 * the next tab takes over. Sends from any tab go straight to IndexedDB and a
 * BroadcastChannel message wakes the drainer.
 *
 * Nothing is sent twice or stranded: only the lock holder sends, it re-reads
 * the outbox when it takes over, and an event leaves the outbox only on its
 * ack; a batch the closed tab had in flight is re-sent with the same producer
 * id and sequences, which the hub answers with the original offsets.
 */

interface LockManagerLike {
  request(name: string, options: { signal?: AbortSignal }, cb: () => Promise<void>): Promise<void>;
}

export interface DrainLease {
  /** Resolves when this tab holds the right to drain. */
  acquired: Promise<void>;
  /** Whether this tab drains now. */
  readonly held: boolean;
  /** Gives the right up (or stops waiting for it). */
  release(): void;
}

/** Waits for the drain lock of `outboxName`; outside browsers (no Web Locks) it is granted at once. */
export function requestDrainLease(outboxName: string): DrainLease {
  const locks = (globalThis as { navigator?: { locks?: LockManagerLike } }).navigator?.locks;
  let held = false;
  if (!locks) {
    held = true;
    return {
      acquired: Promise.resolve(),
      get held() {
        return held;
      },
      release: () => void (held = false),
    };
  }
  const abort = new AbortController();
  let releaseLock!: () => void;
  const holding = new Promise<void>((r) => (releaseLock = r));
  let granted!: () => void;
  const acquired = new Promise<void>((r) => (granted = r));
  locks
    .request(`tributary-outbox:${outboxName}`, { signal: abort.signal }, async () => {
      held = true;
      granted();
      await holding;
      held = false;
    })
    .catch(() => {
      /* aborted while waiting: released before it was granted */
    });
  return {
    acquired,
    get held() {
      return held;
    },
    release: () => {
      abort.abort();
      releaseLock();
    },
  };
}

/** Cross-tab "the outbox changed" pings. A no-op where BroadcastChannel is missing. */
export class OutboxSignal {
  private ch?: BroadcastChannel;

  constructor(outboxName: string, onMessage: (kind: 'appended' | 'drained') => void) {
    if (typeof BroadcastChannel !== 'function' || typeof (globalThis as { document?: unknown }).document === 'undefined') return;
    this.ch = new BroadcastChannel(`tributary-outbox:${outboxName}`);
    this.ch.onmessage = (ev: MessageEvent) => {
      if (ev.data === 'appended' || ev.data === 'drained') onMessage(ev.data);
    };
  }

  private queued = new Set<'appended' | 'drained'>();

  /** Coalesced: a burst of sends (or acks) costs one message per kind per task, not one each. */
  post(kind: 'appended' | 'drained'): void {
    if (!this.ch || this.queued.has(kind)) return;
    this.queued.add(kind);
    setTimeout(() => {
      this.queued.delete(kind);
      this.ch?.postMessage(kind);
    }, 0);
  }

  close(): void {
    this.ch?.close();
    this.ch = undefined;
  }
}
