/**
 * The consumer-group side of a subscription (KIP-848 as the hub speaks it):
 * the member id kept across reconnects, the partitions held, heartbeats,
 * coalesced commits, and the bookkeeping of an assignment (what it takes
 * away, what it adds). The hub assigns; a member never computes anything
 * but the difference between two sets.
 *
 * Commits are coalesced: at most one commit request in flight, carrying the
 * newest position of every partition that moved; the next one leaves when it
 * is answered. A FENCED answer means this member's generation is over: the
 * hub ends the subscription and the client rejoins as a new member.
 */
import { TributaryError, type AssignmentFrame } from '../protocol/index.ts';
import type { Connection } from './connection.ts';
import { ClientError } from './errors.ts';

/** What an assignment changes for this member, computed when it arrives. */
export interface AssignmentChange {
  frame: AssignmentFrame;
  added: number[];
  revoked: number[];
}

export class GroupMember {
  /** The hub's member id, kept across reconnects to resume membership. */
  id: string | undefined;
  generation = 0;
  /** Partitions this member may hand to the handler now. */
  readonly held = new Set<number>();
  private heartbeatTimer: ReturnType<typeof setInterval> | undefined;
  /** Positions handled but not yet committed, partition → next offset. */
  private readonly dirty = new Map<number, number>();
  private inFlight: Promise<void> | null = null;

  constructor(
    private readonly conn: Connection,
    readonly group: string,
    private readonly topic: string,
    readonly autoCommit: boolean,
    private readonly onError: (err: Error) => void,
  ) {}

  /**
   * The subscribe's ok. Returns true when the hub resumed this same member
   * (its partitions kept), false when it is a new member: whatever was held
   * before is lost (the caller tells onRevoke).
   */
  joined(ok: Record<string, unknown>, subId: number, heartbeatFailed: () => void): boolean {
    const member = typeof ok.member === 'string' ? ok.member : undefined;
    const resumed = member !== undefined && member === this.id;
    this.id = member;
    if (typeof ok.generation === 'number') this.generation = ok.generation;
    const everyMs = typeof ok.heartbeatIntervalMs === 'number' && ok.heartbeatIntervalMs > 0 ? ok.heartbeatIntervalMs : 3000;
    this.stopHeartbeat();
    this.heartbeatTimer = setInterval(() => {
      if (!this.conn.isOpen) return;
      this.conn.request({ t: 'heartbeat', sub: subId }).catch((err: unknown) => {
        // FENCED / UNKNOWN_SUBSCRIPTION: the hub no longer knows this member here; a lost connection rejoins by itself.
        if (err instanceof TributaryError) heartbeatFailed();
      });
    }, everyMs);
    if (!resumed) this.dirty.clear();
    return resumed;
  }

  /** Reads an assignment against what is held, and makes it the held set at once (records of revoked partitions stop). */
  take(frame: AssignmentFrame): AssignmentChange {
    const next = new Set(frame.partitions);
    const revoked: number[] = [];
    for (const p of this.held) if (!next.has(p)) revoked.push(p);
    const added: number[] = [];
    for (const p of frame.partitions) if (!this.held.has(p)) added.push(p);
    for (const p of revoked) this.held.delete(p);
    for (const p of added) this.held.add(p);
    this.generation = frame.generation;
    return { frame, added, revoked };
  }

  /** Forget everything held (the member ended); returns what was held. */
  lose(): number[] {
    const lost = [...this.held];
    this.held.clear();
    this.dirty.clear();
    this.id = undefined;
    this.stopHeartbeat();
    return lost;
  }

  /** After the handler finished records below `next` of `partition`. */
  processed(partition: number, next: number): void {
    this.dirty.set(partition, next);
    if (this.autoCommit && !this.inFlight) void this.flushQuietly();
  }

  /**
   * Sends every pending position (and waits for commits already in flight).
   * Resolves when they are answered; rejects with the hub's error (FENCED…).
   */
  async flush(): Promise<void> {
    while (this.inFlight) await this.inFlight.catch(() => undefined);
    if (this.dirty.size === 0) return;
    const offsets = [...this.dirty];
    this.dirty.clear();
    const p = this.send(offsets);
    this.inFlight = p.then(
      () => this.settled(),
      () => this.settled(),
    );
    return p;
  }

  private settled(): void {
    this.inFlight = null;
    if (this.autoCommit && this.dirty.size > 0 && this.conn.isOpen) void this.flushQuietly();
  }

  /** Commits exactly `offsets` (manual commit). */
  commit(offsets: Array<[number, number]>): Promise<void> {
    for (const [p] of offsets) this.dirty.delete(p);
    return this.send(offsets);
  }

  private async send(offsets: Array<[number, number]>): Promise<void> {
    if (this.id === undefined) throw new ClientError('DISCONNECTED', 'not a group member yet');
    try {
      await this.conn.request({ t: 'commit', group: this.group, topic: this.topic, offsets, member: this.id, generation: this.generation });
    } catch (err) {
      // Not committed: keep the newest position for the next try (a later one may already be there).
      if (err instanceof ClientError && err.code === 'DISCONNECTED') for (const [p, o] of offsets) if (!this.dirty.has(p) && this.held.has(p)) this.dirty.set(p, o);
      throw err;
    }
  }

  /** Auto-commit's failures are reported, not thrown: the hub's verdict on membership arrives on the subscription. */
  flushQuietly(): Promise<void> {
    return this.flush().catch((err: unknown) => {
      if (err instanceof ClientError) return;
      if (err instanceof TributaryError && err.code === 'FENCED') return;
      this.onError(err as Error);
    });
  }

  /** Gave up what `generation` revoked. */
  async confirm(subId: number, generation: number): Promise<void> {
    try {
      await this.conn.request({ t: 'confirm', sub: subId, generation });
    } catch (err) {
      if (!(err instanceof ClientError) && !(err instanceof TributaryError && (err.code === 'FENCED' || err.code === 'UNKNOWN_SUBSCRIPTION'))) this.onError(err as Error);
    }
  }

  stopHeartbeat(): void {
    clearInterval(this.heartbeatTimer);
    this.heartbeatTimer = undefined;
  }
}
