/**
 * One consumer group's membership and partition ownership: a small state
 * machine with generations, no timers and no I/O (the coordinator owns
 * those), so that it is tested as a table of transitions.
 *
 * KIP-848's reconciliation, cooperative: each membership change bumps the
 * generation and recomputes a target with the sticky assignor. A member is
 * first told to give up partitions it holds that are no longer its target
 * (they stay "pending" and owned by it); only when it confirms (or leaves,
 * expires, or is expelled) are they free, and only free partitions are
 * handed out. So a partition never has two owners at once.
 *
 * States: empty (no members), stable (every member holds exactly its
 * target), rebalancing (some partitions are still pending or waiting).
 */
import { assignSticky } from './sticky-assignor.ts';

export type GroupStateName = 'empty' | 'stable' | 'rebalancing';

export interface MemberState {
  readonly id: string;
  readonly topic: string;
  /** What the member was last told it holds (the assignment frame's set). */
  readonly assigned: Set<number>;
  /** Taken away but not yet confirmed: still owned by this member, partition → generation of the revoking assignment. */
  readonly pending: Map<number, number>;
  /** What the assignor wants this member to hold. */
  target: Set<number>;
  /** Generation of the last assignment sent to it (0 before the first). */
  generation: number;
  /** Generation at which it was given each partition it holds (commit fencing). */
  readonly since: Map<number, number>;
  /** When its oldest unconfirmed revocation was sent; null when none is pending. */
  pendingSinceMs: number | null;
}

/** An assignment to send: the member's whole set, and which partitions are new to it. */
export interface AssignmentOut {
  member: string;
  generation: number;
  partitions: number[];
  added: number[];
  revoked: number[];
}

export class GroupState {
  generation = 0;
  /** Members in join order (the assignor's tie-break). */
  readonly members = new Map<string, MemberState>();
  private readonly partitionCounts = new Map<string, number>();
  /** Rebalances started (membership or partition changes). */
  rebalances = 0;

  get state(): GroupStateName {
    if (this.members.size === 0) return 'empty';
    for (const m of this.members.values()) {
      if (m.pending.size > 0 || m.assigned.size !== m.target.size) return 'rebalancing';
      for (const p of m.target) if (!m.assigned.has(p)) return 'rebalancing';
    }
    return 'stable';
  }

  topics(): string[] {
    return [...new Set([...this.members.values()].map((m) => m.topic))];
  }

  /** A new member for `topic`, which has `partitionCount` partitions. */
  join(id: string, topic: string, partitionCount: number, nowMs: number): AssignmentOut[] {
    if (this.members.has(id)) throw new Error(`member ${id} already in the group`);
    this.members.set(id, { id, topic, assigned: new Set(), pending: new Map(), target: new Set(), generation: 0, since: new Map(), pendingSinceMs: null });
    this.partitionCounts.set(topic, partitionCount);
    return this.rebalance(nowMs);
  }

  /** A member left, expired or was expelled: everything it owned is free at once. */
  remove(id: string, nowMs: number): AssignmentOut[] {
    const m = this.members.get(id);
    if (!m) return [];
    this.members.delete(id);
    if (!this.topics().includes(m.topic)) this.partitionCounts.delete(m.topic);
    return this.rebalance(nowMs);
  }

  /** The topic grew. */
  setPartitionCount(topic: string, partitionCount: number, nowMs: number): AssignmentOut[] {
    const before = this.partitionCounts.get(topic);
    if (before === undefined || before === partitionCount) return [];
    this.partitionCounts.set(topic, partitionCount);
    return this.rebalance(nowMs);
  }

  /** The member finished with what assignments up to `generation` took away: those partitions are free. */
  confirm(id: string, generation: number, nowMs: number): AssignmentOut[] {
    const m = this.members.get(id);
    if (!m || m.pending.size === 0) return [];
    let released = false;
    for (const [p, g] of m.pending) {
      if (g <= generation) {
        m.pending.delete(p);
        m.since.delete(p);
        released = true;
      }
    }
    if (!released) return [];
    if (m.pending.size === 0) m.pendingSinceMs = null;
    return this.reconcile(nowMs);
  }

  /** Members whose revocation has waited longer than `timeoutMs` (to be expelled). */
  overdue(nowMs: number, timeoutMs: number): string[] {
    const out: string[] = [];
    for (const m of this.members.values()) if (m.pendingSinceMs !== null && nowMs - m.pendingSinceMs > timeoutMs) out.push(m.id);
    return out;
  }

  /**
   * Whether `id` may commit `partition`: it is a member that owns it (held or
   * pending revocation), and `generation` (when given) is not older than the
   * assignment that gave it the partition.
   */
  mayCommit(id: string, partition: number, generation: number | undefined): boolean {
    const m = this.members.get(id);
    if (!m) return false;
    const since = m.since.get(partition);
    if (since === undefined) return false;
    return generation === undefined || (generation >= since && generation <= this.generation);
  }

  /** Owner of each partition of `topic` (held or pending). */
  owners(topic: string): Map<number, string> {
    const out = new Map<number, string>();
    for (const m of this.members.values()) {
      if (m.topic !== topic) continue;
      for (const p of m.assigned) out.set(p, m.id);
      for (const p of m.pending.keys()) out.set(p, m.id);
    }
    return out;
  }

  private rebalance(nowMs: number): AssignmentOut[] {
    this.generation++;
    this.rebalances++;
    for (const [topic, count] of this.partitionCounts) {
      const ids = [...this.members.values()].filter((m) => m.topic === topic).map((m) => m.id);
      // Sticky against the previous target: a rebalance during a rebalance does not thrash.
      const previous = new Map<number, string>();
      for (const id of ids) for (const p of this.members.get(id)!.target) if (p < count) previous.set(p, id);
      const next = assignSticky(count, ids, previous);
      for (const [id, parts] of next) this.members.get(id)!.target = new Set(parts);
    }
    return this.reconcile(nowMs);
  }

  /** Moves every member toward its target as far as ownership allows; returns the assignments that changed. */
  private reconcile(nowMs: number): AssignmentOut[] {
    const out = new Map<string, AssignmentOut>();
    const touch = (m: MemberState): AssignmentOut => {
      let a = out.get(m.id);
      if (!a) out.set(m.id, (a = { member: m.id, generation: this.generation, partitions: [], added: [], revoked: [] }));
      return a;
    };
    // 1. Revoke what members hold beyond their target.
    for (const m of this.members.values()) {
      for (const p of m.assigned) {
        if (m.target.has(p)) continue;
        m.assigned.delete(p);
        m.pending.set(p, this.generation);
        if (m.pendingSinceMs === null) m.pendingSinceMs = nowMs;
        touch(m).revoked.push(p);
      }
    }
    // 2. Hand out target partitions nobody owns.
    const owned = new Map<string, Set<number>>();
    for (const m of this.members.values()) {
      let s = owned.get(m.topic);
      if (!s) owned.set(m.topic, (s = new Set()));
      for (const p of m.assigned) s.add(p);
      for (const p of m.pending.keys()) s.add(p);
    }
    for (const m of this.members.values()) {
      const taken = owned.get(m.topic)!;
      for (const p of m.target) {
        if (m.assigned.has(p) || taken.has(p)) continue;
        m.assigned.add(p);
        m.since.set(p, this.generation);
        taken.add(p);
        touch(m).added.push(p);
      }
    }
    for (const a of out.values()) {
      const m = this.members.get(a.member)!;
      m.generation = this.generation;
      a.partitions = [...m.assigned].sort((x, y) => x - y);
      a.added.sort((x, y) => x - y);
      a.revoked.sort((x, y) => x - y);
    }
    this.assertOneOwner();
    return [...out.values()];
  }

  /** Invariant: a partition has at most one owner (held or pending) per topic. */
  private assertOneOwner(): void {
    const seen = new Set<string>();
    for (const m of this.members.values()) {
      for (const p of [...m.assigned, ...m.pending.keys()]) {
        const k = `${m.topic}\u0000${p}`;
        if (seen.has(k)) throw new Error(`partition ${m.topic}/${p} has two owners`);
        seen.add(k);
      }
    }
  }
}
