/**
 * The consumer-group coordinator (DESIGN.md idea 6, Kafka's KIP-848): the
 * hub assigns partitions to members with the sticky assignor and pushes
 * assignments; members heartbeat, confirm revocations and commit.
 *
 * One `subscribe` with `group` is one member, for one topic. Its records flow
 * through an ordinary broker Subscription whose partitions the coordinator
 * adds (at the group's committed offset, else the member's `from`) and
 * removes (when an assignment takes them away). The membership logic itself
 * is GroupState (pure); this file adds time, sinks and offsets:
 * - a dropped connection only detaches a member: it keeps its partitions
 *   (nobody else gets them) until its session times out, and may come back
 *   with its member id on a new connection;
 * - a member silent for sessionTimeoutMs, or not confirming a revocation
 *   within rebalanceTimeoutMs, is removed and its partitions move on;
 * - commits from members are fenced: only a live owner may commit.
 */
import { randomUUID } from 'node:crypto';
import { TributaryError } from '../../protocol/errors.ts';
import type { AssignmentFrame, StartPosition } from '../../protocol/frames.ts';
import type { LogStore, TopicInfo } from '../storage/log-store.ts';
import { GroupOffsets } from './group-offsets.ts';
import { GroupState, type AssignmentOut } from './group-state.ts';
import type { Subscription, SubscriptionSink } from './subscription.ts';
import type { Subscriptions } from './subscriptions.ts';
import type { Topics } from './topics.ts';
import type { Crc32c } from '../../protocol/crc32c.ts';

export interface GroupSettings {
  sessionTimeoutMs: number;
  heartbeatIntervalMs: number;
  rebalanceTimeoutMs: number;
  /** Members per group. */
  maxMembers: number;
  /** Groups with members or committed offsets. */
  maxGroups: number;
}

/** Where a member's frames go: its connection. */
export interface GroupMemberSink extends SubscriptionSink {
  assignment(frame: AssignmentFrame): void;
}

export interface GroupEvents {
  rebalance(group: string): void;
}

export interface JoinRequest {
  group: string;
  topic: string;
  from: StartPosition;
  /** Subscription id on the member's connection. */
  subId: number;
  credit?: number;
  /** The member id from an earlier join, to resume it. */
  member?: string;
  /** Who the member is, for GET /v1/groups/:group. */
  client: string;
}

export interface JoinResult {
  member: string;
  generation: number;
  subscription: Subscription;
}

export interface Member {
  readonly id: string;
  readonly group: string;
  readonly topic: string;
  readonly from: StartPosition;
  client: string;
  subId: number;
  sink: GroupMemberSink | null;
  subscription: Subscription | null;
  /** False from join until the transport has answered the subscribe (assignments wait). */
  started: boolean;
  lastSeenMs: number;
  /** Serialises assignment deliveries (start positions may need a timestamp lookup). */
  chain: Promise<void>;
}

export interface Group {
  readonly name: string;
  readonly state: GroupState;
  readonly members: Map<string, Member>;
  /** Where a partition without a committed offset was first started (topic\0p → offset), so the next owner starts there too. */
  readonly starts: Map<string, number>;
  /** The generation last reported as a rebalance (metrics). */
  reportedGeneration: number;
}

export class GroupCoordinator {
  readonly groups = new Map<string, Group>();
  readonly offsets: GroupOffsets;
  private readonly members = new Map<string, Member>();
  private timer: ReturnType<typeof setInterval> | null = null;
  private readonly unlisten: () => void;

  constructor(
    private readonly store: LogStore,
    private readonly topics: Topics,
    private readonly subscriptions: Subscriptions,
    readonly settings: GroupSettings,
    crc: Crc32c,
    private readonly events: GroupEvents = { rebalance: () => undefined },
  ) {
    this.offsets = new GroupOffsets(store, crc);
    this.unlisten = topics.onChange((topic, info) => this.onTopicChange(topic, info));
  }

  /** Replays committed offsets and starts the session sweep. */
  async open(): Promise<void> {
    await this.offsets.open();
    // Sweep often enough that a dropped member moves within its session timeout plus a fraction.
    const everyMs = Math.max(20, Math.min(250, Math.floor(this.settings.sessionTimeoutMs / 10)));
    this.timer = setInterval(() => this.sweep(Date.now()), everyMs);
    this.timer.unref?.();
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.unlisten();
  }

  /**
   * Joins (or, with a live member id, resumes) a member. Its subscription is
   * registered but idle: the caller answers the request, then calls start().
   */
  async join(req: JoinRequest, sink: GroupMemberSink): Promise<JoinResult> {
    const info = await this.topics.ensure(req.topic);
    const now = Date.now();
    const known = req.member !== undefined ? this.members.get(req.member) : undefined;
    if (known && known.group === req.group && known.topic === req.topic) {
      // The same member on a new connection (a phone out of its tunnel): keep its partitions.
      if (known.subscription) this.subscriptions.remove(known.subscription);
      known.sink = sink;
      known.subId = req.subId;
      known.client = req.client;
      known.started = false;
      known.lastSeenMs = now;
      known.subscription = this.subscriptions.createEmpty(req.subId, req.topic, req.credit, sink);
      return { member: known.id, generation: this.groups.get(req.group)!.state.generation, subscription: known.subscription };
    }
    let group = this.groups.get(req.group);
    if (!group) {
      if (this.groupCount() >= this.settings.maxGroups) {
        throw new TributaryError('CONFLICT', `the hub has ${this.settings.maxGroups} groups (groups.maxGroups)`, { limit: 'groups.maxGroups' });
      }
      group = { name: req.group, state: new GroupState(), members: new Map(), starts: new Map(), reportedGeneration: 0 };
      this.groups.set(req.group, group);
    }
    if (group.members.size >= this.settings.maxMembers) {
      throw new TributaryError('CONFLICT', `group ${req.group} has ${this.settings.maxMembers} members (groups.maxMembers)`, { limit: 'groups.maxMembers' });
    }
    const m: Member = {
      id: randomUUID(),
      group: req.group,
      topic: req.topic,
      from: req.from,
      client: req.client,
      subId: req.subId,
      sink,
      subscription: this.subscriptions.createEmpty(req.subId, req.topic, req.credit, sink),
      started: false,
      lastSeenMs: now,
      chain: Promise.resolve(),
    };
    this.members.set(m.id, m);
    group.members.set(m.id, m);
    this.apply(group, group.state.join(m.id, req.topic, info.partitions, now));
    return { member: m.id, generation: group.state.generation, subscription: m.subscription! };
  }

  /** The subscribe was answered: send the member its current assignment and begin delivery. */
  start(memberId: string): void {
    const m = this.members.get(memberId);
    if (!m || m.started) return;
    m.started = true;
    const st = this.groups.get(m.group)!.state.members.get(m.id)!;
    const partitions = [...st.assigned].sort((a, b) => a - b);
    // Everything it holds is (re)added: a resumed member's new subscription starts empty.
    this.deliver(m, { member: m.id, generation: st.generation || this.groups.get(m.group)!.state.generation, partitions, added: partitions, revoked: [] }, true);
    m.subscription?.start();
  }

  /**
   * A clean leave (unsubscribe) through `subscription`: its partitions move
   * at once. A subscription the member has since left behind (it resumed on
   * another connection) does not end it.
   */
  leave(memberId: string, subscription: Subscription): void {
    const m = this.members.get(memberId);
    if (!m || (m.subscription !== null && m.subscription !== subscription)) return;
    this.removeMember(m);
  }

  /**
   * The member's connection is gone. The member stays, with its partitions,
   * until its session times out; it may resume on a new connection.
   */
  detach(memberId: string, subscription: Subscription): void {
    const m = this.members.get(memberId);
    if (!m || m.subscription !== subscription) return;
    this.subscriptions.remove(subscription);
    m.subscription = null;
    m.sink = null;
    m.started = false;
  }

  /** Any frame of the member's subscription keeps it alive. */
  touch(memberId: string): void {
    const m = this.members.get(memberId);
    if (m) m.lastSeenMs = Date.now();
  }

  heartbeat(memberId: string): { generation: number } {
    const m = this.live(memberId);
    m.lastSeenMs = Date.now();
    return { generation: this.groups.get(m.group)!.state.generation };
  }

  /** The member gave up what assignments up to `generation` revoked: hand those partitions on. */
  confirm(memberId: string, generation: number): void {
    const m = this.live(memberId);
    const now = Date.now();
    m.lastSeenMs = now;
    const group = this.groups.get(m.group)!;
    this.apply(group, group.state.confirm(m.id, generation, now));
  }

  /**
   * Commits next-offsets. From a member: FENCED unless it is live and owns
   * every partition named (generation, when given, not older than the
   * assignment that gave each). Without a member: only while the group has
   * no members (CONFLICT otherwise).
   */
  async commit(groupName: string, topic: string, offsets: ReadonlyArray<readonly [number, number]>, memberId?: string, generation?: number): Promise<void> {
    const group = this.groups.get(groupName);
    if (memberId !== undefined) {
      const m = this.members.get(memberId);
      if (!m || m.group !== groupName || !group) throw new TributaryError('FENCED', `member ${memberId} is not in group ${groupName} (expired, expelled or left): rejoin`);
      if (m.topic !== topic) throw new TributaryError('FENCED', `member ${memberId} consumes ${m.topic}, not ${topic}`);
      for (const [p] of offsets) {
        if (!group.state.mayCommit(m.id, p, generation)) {
          throw new TributaryError('FENCED', `member ${memberId} does not own ${topic}/${p} in generation ${generation ?? 'current'} (group generation ${group.state.generation})`, {
            partition: p,
            generation: group.state.generation,
          });
        }
      }
      m.lastSeenMs = Date.now();
    } else if (group && group.members.size > 0) {
      throw new TributaryError('CONFLICT', `group ${groupName} has ${group.members.size} members: only they may commit (or commit when it is empty)`);
    } else {
      const info = this.topics.require(topic);
      for (const [p] of offsets) if (p >= info.partitions) throw new TributaryError('BAD_PARTITION', `partition ${p} does not exist; ${topic} has ${info.partitions}`);
      if (!group && !this.offsets.ofGroup(groupName).size && this.groupCount() >= this.settings.maxGroups) {
        throw new TributaryError('CONFLICT', `the hub has ${this.settings.maxGroups} groups (groups.maxGroups)`, { limit: 'groups.maxGroups' });
      }
    }
    await this.offsets.commit(groupName, topic, offsets);
  }

  /** Groups known: with members or with committed offsets. */
  groupNames(): string[] {
    const names = new Set(this.offsets.groups());
    for (const [name, g] of this.groups) if (g.members.size > 0) names.add(name);
    return [...names].sort();
  }

  memberOf(id: string): Member | undefined {
    return this.members.get(id);
  }

  /** Expires members past their session timeout and expels those that did not confirm in time. */
  sweep(nowMs: number): void {
    for (const m of [...this.members.values()]) {
      if (nowMs - m.lastSeenMs > this.settings.sessionTimeoutMs) this.expel(m, `no heartbeat for ${this.settings.sessionTimeoutMs} ms (groups.sessionTimeoutMs)`);
    }
    for (const g of [...this.groups.values()]) {
      for (const id of g.state.overdue(nowMs, this.settings.rebalanceTimeoutMs)) {
        const m = this.members.get(id);
        if (m) this.expel(m, `did not confirm a revocation within ${this.settings.rebalanceTimeoutMs} ms (groups.rebalanceTimeoutMs)`);
      }
      if (g.members.size === 0 && g.state.members.size === 0) this.groups.delete(g.name);
    }
  }

  private groupCount(): number {
    return new Set([...this.offsets.groups(), ...this.groups.keys()]).size;
  }

  private live(memberId: string): Member {
    const m = this.members.get(memberId);
    if (!m) throw new TributaryError('FENCED', `member ${memberId} is no longer in its group: rejoin`);
    return m;
  }

  private expel(m: Member, why: string): void {
    const sink = m.sink;
    const subId = m.subId;
    this.removeMember(m);
    // Ends the subscription on its connection (if it still has one); the client rejoins as a new member.
    sink?.error(subId, new TributaryError('FENCED', `member ${m.id} removed from group ${m.group}: ${why}`));
  }

  private removeMember(m: Member): void {
    this.members.delete(m.id);
    const group = this.groups.get(m.group)!;
    group.members.delete(m.id);
    if (m.subscription) this.subscriptions.remove(m.subscription);
    m.subscription = null;
    m.sink = null;
    this.apply(group, group.state.remove(m.id, Date.now()));
  }

  private apply(group: Group, outs: AssignmentOut[]): void {
    if (group.reportedGeneration !== group.state.generation) {
      group.reportedGeneration = group.state.generation;
      this.events.rebalance(group.name);
    }
    for (const out of outs) {
      const m = group.members.get(out.member);
      if (m && m.started) this.deliver(m, out, false);
    }
  }

  /** Moves the member's subscription to its new set and tells it, in that order, so records follow their assignment. */
  private deliver(m: Member, out: AssignmentOut, whole: boolean): void {
    m.chain = m.chain
      .then(async () => {
        const group = this.groups.get(m.group);
        if (!group || !this.members.has(m.id) || !m.sink || !m.subscription) return;
        const positions: Record<string, number> = {};
        for (const p of out.partitions) positions[p] = await this.startOf(group, m, p);
        // The set may have moved on while positions were looked up; later deliveries follow in order.
        const st = group.state.members.get(m.id);
        if (!st) return;
        const subscription = m.subscription;
        if (!whole) for (const p of out.revoked) subscription.removePartition(p);
        else for (const p of subscription.partitions()) if (!st.assigned.has(p)) subscription.removePartition(p);
        for (const p of out.added) if (st.assigned.has(p) && positions[p] !== undefined) subscription.addPartition(p, positions[p]);
        m.sink.assignment({ t: 'assignment', sub: m.subId, group: m.group, generation: out.generation, partitions: out.partitions, positions });
      })
      .catch((err: unknown) => {
        m.sink?.error(m.subId, err instanceof TributaryError ? err : new TributaryError('INTERNAL', String(err)));
      });
  }

  /** The committed offset, else where the group first started the partition, else the member's `from`. */
  private async startOf(group: Group, m: Member, p: number): Promise<number> {
    const committed = this.offsets.get(group.name, m.topic, p);
    const o = this.store.offsets(m.topic, p);
    if (committed !== undefined) return Math.min(Math.max(committed, o.earliest), o.logEnd);
    const key = `${m.topic}\u0000${p}`;
    const started = group.starts.get(key);
    if (started !== undefined) return started;
    const from = m.from;
    let at: number;
    if (from === 'earliest') at = o.earliest;
    else if (from === 'latest') at = o.highWatermark;
    else if ('timestamp' in from) at = await this.store.offsetForTimestamp(m.topic, p, from.timestamp);
    else at = Math.min(Math.max(from.offset, o.earliest), o.logEnd);
    group.starts.set(key, at);
    return at;
  }

  private onTopicChange(topic: string, info: TopicInfo | undefined): void {
    if (!info) return; // deleted: its subscriptions end, and their members leave through the transport
    const now = Date.now();
    for (const g of this.groups.values()) this.apply(g, g.state.setPartitionCount(topic, info.partitions, now));
  }
}
