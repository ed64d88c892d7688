/**
 * What tools see of consumer groups (HTTP, CLI, /metrics): listings with
 * lag, one group's members and offsets, and the operations allowed only on
 * a group with no members: reset offsets and delete.
 *
 * Lag of a partition = high watermark − the group's position there: its
 * committed offset, else where the group started it, else the earliest
 * retained offset (records the group has not consumed yet).
 */
import { TributaryError } from '../../protocol/errors.ts';
import type { LogStore } from '../storage/log-store.ts';
import type { GroupCoordinator } from './group-coordinator.ts';
import type { GroupStateName } from './group-state.ts';

export interface GroupSummary {
  group: string;
  state: GroupStateName;
  generation: number;
  members: number;
  topics: string[];
  lag: number;
}

export interface PartitionLag {
  topic: string;
  partition: number;
  /** Next offset to process, as committed; null when the group has committed nothing there. */
  committed: number | null;
  highWatermark: number;
  lag: number;
}

export interface GroupDescription {
  group: string;
  state: GroupStateName;
  generation: number;
  members: Array<{ member: string; client: string; topic: string; partitions: number[]; connected: boolean }>;
  offsets: PartitionLag[];
}

export type ResetTarget = 'earliest' | 'latest' | { offset: number } | { timestamp: number };

export class GroupAdmin {
  constructor(
    private readonly groups: GroupCoordinator,
    private readonly store: LogStore,
  ) {}

  list(): GroupSummary[] {
    return this.groups.groupNames().map((name) => {
      const d = this.describeOrNull(name)!;
      return { group: name, state: d.state, generation: d.generation, members: d.members.length, topics: this.topicsOf(name), lag: d.offsets.reduce((n, o) => n + o.lag, 0) };
    });
  }

  /** UNKNOWN_GROUP when the group has neither members nor offsets. */
  describe(name: string): GroupDescription {
    const d = this.describeOrNull(name);
    if (!d) throw new TributaryError('UNKNOWN_GROUP', `group ${JSON.stringify(name)} has neither members nor committed offsets`);
    return d;
  }

  /** Every (group, topic, partition) lag, for /metrics. */
  lagRows(): Array<{ group: string; topic: string; partition: number; lag: number }> {
    const out: Array<{ group: string; topic: string; partition: number; lag: number }> = [];
    for (const name of this.groups.groupNames()) for (const o of this.lagOf(name)) out.push({ group: name, topic: o.topic, partition: o.partition, lag: o.lag });
    return out;
  }

  memberCounts(): Array<{ group: string; members: number }> {
    return this.groups.groupNames().map((group) => ({ group, members: this.groups.groups.get(group)?.members.size ?? 0 }));
  }

  /** Sets the group's offsets of `topic` (all partitions, or those given) to a position. CONFLICT while it has members. */
  async reset(name: string, topic: string, to: ResetTarget, partitions?: number[]): Promise<PartitionLag[]> {
    this.assertEmpty(name, 'reset its offsets');
    const info = this.store.getTopic(topic);
    if (!info) throw new TributaryError('UNKNOWN_TOPIC', `unknown topic ${JSON.stringify(topic)}`);
    const parts = partitions ?? Array.from({ length: info.partitions }, (_, i) => i);
    const offsets: Array<[number, number]> = [];
    for (const p of parts) {
      if (!Number.isInteger(p) || p < 0 || p >= info.partitions) throw new TributaryError('BAD_PARTITION', `partition ${p} does not exist; ${topic} has ${info.partitions}`);
      const o = this.store.offsets(topic, p);
      let at: number;
      if (to === 'earliest') at = o.earliest;
      else if (to === 'latest') at = o.highWatermark;
      else if ('timestamp' in to) at = await this.store.offsetForTimestamp(topic, p, to.timestamp);
      else at = Math.min(Math.max(to.offset, o.earliest), o.highWatermark);
      offsets.push([p, at]);
    }
    await this.groups.commit(name, topic, offsets);
    this.groups.groups.get(name)?.starts.clear();
    return this.lagOf(name).filter((o) => o.topic === topic && parts.includes(o.partition));
  }

  /** Forgets the group's offsets. CONFLICT while it has members; UNKNOWN_GROUP when there is nothing. */
  async delete(name: string): Promise<void> {
    this.assertEmpty(name, 'delete it');
    if (!this.describeOrNull(name)) throw new TributaryError('UNKNOWN_GROUP', `group ${JSON.stringify(name)} has neither members nor committed offsets`);
    await this.groups.offsets.deleteGroup(name);
    this.groups.groups.delete(name);
  }

  private assertEmpty(name: string, what: string): void {
    const n = this.groups.groups.get(name)?.members.size ?? 0;
    if (n > 0) throw new TributaryError('CONFLICT', `group ${name} has ${n} members: stop them to ${what}`, { members: n });
  }

  private topicsOf(name: string): string[] {
    const topics = new Set(this.groups.offsets.ofGroup(name).keys());
    for (const m of this.groups.groups.get(name)?.members.values() ?? []) topics.add(m.topic);
    return [...topics].sort();
  }

  private lagOf(name: string): PartitionLag[] {
    const out: PartitionLag[] = [];
    const committed = this.groups.offsets.ofGroup(name);
    const starts = this.groups.groups.get(name)?.starts;
    for (const topic of this.topicsOf(name)) {
      const info = this.store.getTopic(topic);
      if (!info) continue;
      for (let p = 0; p < info.partitions; p++) {
        const o = this.store.offsets(topic, p);
        const c = committed.get(topic)?.get(p);
        const position = c ?? starts?.get(`${topic}\u0000${p}`) ?? o.earliest;
        out.push({ topic, partition: p, committed: c ?? null, highWatermark: o.highWatermark, lag: Math.max(0, o.highWatermark - position) });
      }
    }
    return out;
  }

  private describeOrNull(name: string): GroupDescription | null {
    const g = this.groups.groups.get(name);
    const hasOffsets = this.groups.offsets.ofGroup(name).size > 0;
    if ((!g || g.members.size === 0) && !hasOffsets) return null;
    const members: GroupDescription['members'] = [];
    for (const m of g?.members.values() ?? []) {
      const st = g!.state.members.get(m.id);
      members.push({ member: m.id, client: m.client, topic: m.topic, partitions: st ? [...st.assigned].sort((a, b) => a - b) : [], connected: m.sink !== null });
    }
    return { group: name, state: g?.state.state ?? 'empty', generation: g?.state.generation ?? 0, members, offsets: this.lagOf(name) };
  }
}
