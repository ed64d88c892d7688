/**
 * Consumer groups across hubs (docs/scale-out.md): members whose hub is not
 * the elected group coordinator. Their records flow through an ordinary
 * Subscription on this hub; what the coordinator decides (assignments,
 * expulsions) arrives as messages, and what the member does (heartbeat,
 * confirm, commit, leave) goes to the coordinator. Applying an assignment
 * here moves the subscription to the new set first and tells the member
 * second, as the coordinator does for its own members.
 */
import { TributaryError, type ErrorCode } from '../../protocol/errors.ts';
import type { AssignmentFrame } from '../../protocol/frames.ts';
import type { GroupLink } from '../storage/log-store.ts';
import type { GroupMemberSink, JoinRequest, JoinResult } from './group-coordinator.ts';
import type { Subscription } from './subscription.ts';
import type { Subscriptions } from './subscriptions.ts';

/** From a member's hub to the coordinator. */
export type ToCoordinator =
  | ({ op: 'join'; hub: string } & Omit<JoinRequest, 'from'> & { from: JoinRequest['from'] })
  | { op: 'commit'; group: string; topic: string; offsets: Array<[number, number]>; member?: string; generation?: number }
  | { op: 'start' | 'leave' | 'detach' | 'heartbeat'; hub: string; member: string }
  | { op: 'confirm'; hub: string; member: string; generation: number };

/** From the coordinator to a member's hub. */
export type ToMemberHub =
  { op: 'assignment'; member: string; frame: AssignmentFrame } | { op: 'error'; member: string; code: ErrorCode; message: string; details?: Record<string, unknown>; partition?: number };

interface Forwarded {
  id: string;
  subId: number;
  sink: GroupMemberSink;
  subscription: Subscription;
  generation: number;
  lastSentMs: number;
}

/** The members of this hub that the coordinator on another hub manages. */
export class GroupForwarder {
  private readonly members = new Map<string, Forwarded>();

  constructor(
    private readonly link: GroupLink,
    private readonly subscriptions: Subscriptions,
    /** Activity (any frame of the subscription) is passed on at most this often per member. */
    private readonly touchEveryMs: number,
  ) {}

  has(member: string): boolean {
    return this.members.has(member);
  }

  async join(req: JoinRequest, sink: GroupMemberSink): Promise<JoinResult> {
    const subscription = this.subscriptions.createEmpty(req.subId, req.topic, req.credit, sink);
    let r: { member: string; generation: number };
    try {
      r = (await this.link.request({ op: 'join', hub: this.link.hubId, ...req } satisfies ToCoordinator)) as typeof r;
    } catch (err) {
      this.subscriptions.remove(subscription);
      throw err;
    }
    // The same member on a new connection of this hub: its old subscription goes.
    const old = this.members.get(r.member);
    if (old) this.subscriptions.remove(old.subscription);
    this.members.set(r.member, { id: r.member, subId: req.subId, sink, subscription, generation: r.generation, lastSentMs: Date.now() });
    return { member: r.member, generation: r.generation, subscription };
  }

  start(member: string): void {
    const f = this.members.get(member);
    if (!f) return;
    f.subscription.start();
    this.to('start', f);
  }

  leave(member: string, subscription: Subscription): void {
    const f = this.members.get(member);
    if (!f || f.subscription !== subscription) return;
    this.drop(f);
    this.to('leave', f);
  }

  detach(member: string, subscription: Subscription): void {
    const f = this.members.get(member);
    if (!f || f.subscription !== subscription) return;
    this.drop(f);
    this.to('detach', f);
  }

  touch(member: string): void {
    const f = this.members.get(member);
    if (f && Date.now() - f.lastSentMs >= this.touchEveryMs) this.to('heartbeat', f);
  }

  /** The generation as last assigned; the coordinator answers a fenced member with an error message. */
  heartbeat(member: string): { generation: number } {
    const f = this.members.get(member)!;
    this.to('heartbeat', f);
    return { generation: f.generation };
  }

  confirm(member: string, generation: number): void {
    const f = this.members.get(member)!;
    f.lastSentMs = Date.now();
    this.link.send({ op: 'confirm', hub: this.link.hubId, member, generation } satisfies ToCoordinator);
  }

  async commit(group: string, topic: string, offsets: ReadonlyArray<readonly [number, number]>, member?: string, generation?: number): Promise<void> {
    await this.link.request({ op: 'commit', group, topic, offsets: offsets.map(([p, o]) => [p, o]), member, generation } satisfies ToCoordinator);
  }

  /** A message from the coordinator about one of this hub's members. */
  told(msg: ToMemberHub): void {
    const f = this.members.get(msg.member);
    if (!f) return;
    if (msg.op === 'assignment') {
      const frame = msg.frame;
      const want = new Set(frame.partitions);
      for (const p of f.subscription.partitions()) if (!want.has(p)) f.subscription.removePartition(p);
      const have = new Set(f.subscription.partitions());
      for (const p of frame.partitions) {
        const at = frame.positions?.[p];
        if (!have.has(p) && at !== undefined) f.subscription.addPartition(p, at);
      }
      f.generation = frame.generation;
      f.sink.assignment({ ...frame, sub: f.subId });
      return;
    }
    if (msg.partition === undefined) this.drop(f);
    f.sink.error(f.subId, new TributaryError(msg.code, msg.message, msg.details), msg.partition);
  }

  /** The coordinator moved: its members must join the new one (the web client rejoins on FENCED). */
  fenceAll(why: string): void {
    for (const f of [...this.members.values()]) {
      this.drop(f);
      f.sink.error(f.subId, new TributaryError('FENCED', `member ${f.id}: ${why}; rejoin`));
    }
  }

  private drop(f: Forwarded): void {
    this.members.delete(f.id);
    this.subscriptions.remove(f.subscription);
  }

  private to(op: 'start' | 'leave' | 'detach' | 'heartbeat', f: Forwarded): void {
    f.lastSentMs = Date.now();
    this.link.send({ op, hub: this.link.hubId, member: f.id } satisfies ToCoordinator);
  }
}
