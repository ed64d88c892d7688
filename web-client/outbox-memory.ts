/**
 * An outbox in memory: survives a client's close and re-creation within the
 * process (kept per name), not the process. For tests, short-lived scripts
 * and Node services that accept losing unsent events on a crash.
 */
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
import { EventLog } from './outbox-log.ts';

interface MemoryState {
  producerId: string;
  events: EventLog;
  failed: FailedEvent[];
  /** topic → per partition, the next sequence. */
  seqs: Map<string, number[]>;
  stats: OutboxStats;
  positions: Map<string, Positions>;
  skips: Record<string, number[]>;
}

const states = new Map<string, MemoryState>();

export class MemoryOutboxStore implements OutboxStore {
  private s: MemoryState;

  constructor(readonly name = 'default') {
    let s = states.get(name);
    if (!s) {
      s = { producerId: newProducerId(), events: new EventLog(), failed: [], seqs: new Map(), stats: { events: 0, bytes: 0, lastId: 0 }, positions: new Map(), skips: {} };
      states.set(name, s);
    }
    this.s = s;
  }

  async open(): Promise<{ producerId: string }> {
    return { producerId: this.s.producerId };
  }

  async append(entries: NewOutboxEvent[], bounds: OutboxBounds): Promise<Array<OutboxEvent | null>> {
    const out = assignIds(entries, bounds, this.s.stats, true);
    for (const e of out) if (e) this.s.events.add(e);
    return out;
  }

  async assign(assignments: Assignment[]): Promise<OutboxEvent[]> {
    const out: OutboxEvent[] = [];
    let topic = '';
    let next: number[] = [];
    for (const a of assignments) {
      const e = this.s.events.get(a.event.id);
      if (!e) continue;
      if (e.p === -1) {
        if (e.topic !== topic) {
          topic = e.topic;
          let n = this.s.seqs.get(topic);
          if (!n) this.s.seqs.set(topic, (n = []));
          next = n;
        }
        // In place: nothing outside the drain holds these objects, and the drain wants them assigned.
        const seq = next[a.p] ?? 0;
        next[a.p] = seq + 1;
        e.p = a.p;
        e.seq = seq;
      }
      out.push(e);
    }
    return out;
  }

  async read(afterId: number, maxEvents: number): Promise<OutboxEvent[]> {
    return this.s.events.after(afterId, maxEvents);
  }

  async remove(events: OutboxEvent[]): Promise<void> {
    for (const e of events) {
      if (this.s.events.delete(e.id)) {
        this.s.stats.events -= 1;
        this.s.stats.bytes -= e.bytes;
      }
    }
  }

  async fail(events: OutboxEvent[], code: string, message: string): Promise<void> {
    const now = Date.now();
    const present = events.filter((e) => this.s.events.has(e.id));
    for (const e of present) this.s.failed.push(failedEvent(e, code, message, now));
    addSkips(this.s.skips, present);
    await this.remove(present);
  }

  async skipped(): Promise<Record<string, number[]>> {
    return structuredClone(this.s.skips);
  }

  async failed(): Promise<FailedEvent[]> {
    return [...this.s.failed];
  }

  async clearFailed(): Promise<void> {
    this.s.failed = [];
  }

  async stats(): Promise<OutboxStats> {
    return { ...this.s.stats };
  }

  async countThrough(maxId: number): Promise<number> {
    return this.s.events.countThrough(maxId);
  }

  async loadPositions(name: string): Promise<Positions | undefined> {
    const p = this.s.positions.get(name);
    return p ? { ...p } : undefined;
  }

  async savePositions(name: string, positions: Positions): Promise<void> {
    this.s.positions.set(name, { ...positions });
  }

  async close(): Promise<void> {}
}
