/**
 * The hub's HTTP API (docs/http-api.md) as typed calls: topics, groups and
 * reads of a partition. The CLI and the dashboard both stand on it, so
 * neither speaks a private API. Uses the global fetch (browsers, Node 18+,
 * Workers); errors come back as the hub's TributaryError (code, status,
 * details), a network failure as ClientError DISCONNECTED.
 */
import { errorFromWire, TributaryError } from '../protocol/index.ts';
import { ClientError } from './errors.ts';
import { resolveToken, type TokenSource } from './token.ts';

export interface PartitionOffsets {
  partition: number;
  earliest: number;
  highWatermark: number;
  logEnd: number;
  bytes: number;
}

export interface TopicSummary {
  name: string;
  partitions: number;
  config: Record<string, unknown>;
  createdAt: number;
}

export interface TopicDescription extends TopicSummary {
  offsets: PartitionOffsets[];
}

export interface GroupSummary {
  group: string;
  state: 'empty' | 'stable' | 'rebalancing';
  generation: number;
  members: number;
  topics: string[];
  lag: number;
}

export interface GroupMember {
  member: string;
  client: string;
  topic: string;
  partitions: number[];
}

export interface GroupOffset {
  topic: string;
  partition: number;
  /** null while the group has committed nothing for the partition (a member reads from its `from`). */
  committed: number | null;
  highWatermark: number;
  lag: number;
}

export interface GroupDescription {
  group: string;
  state: GroupSummary['state'];
  generation: number;
  members: GroupMember[];
  offsets: GroupOffset[];
}

/** Where a group reset moves the committed offsets. */
export type ResetTarget = 'earliest' | 'latest' | { offset: number } | { timestamp: number };

/** A record as the HTTP read answers it: JSON values as they are, bytes as {$base64}. */
export interface HttpRecord {
  offset: number;
  timestamp: number;
  key: string | { $base64: string } | null;
  value: unknown;
  headers: Array<[string, string | { $base64: string }]>;
}

export interface ReadAnswer {
  records: HttpRecord[];
  nextOffset: number;
  highWatermark: number;
}

export interface AdminOptions {
  /** The hub's HTTP base URL, e.g. http://127.0.0.1:8080 (a page may give '' for its own origin). */
  url: string;
  token?: TokenSource;
  fetch?: typeof fetch;
}

export interface Admin {
  listTopics(): Promise<TopicSummary[]>;
  describeTopic(topic: string): Promise<TopicDescription>;
  createTopic(name: string, partitions?: number, config?: Record<string, unknown>): Promise<TopicDescription>;
  deleteTopic(topic: string): Promise<void>;
  listGroups(): Promise<GroupSummary[]>;
  describeGroup(group: string): Promise<GroupDescription>;
  resetGroup(group: string, topic: string, to: ResetTarget, partitions?: number[]): Promise<{ offsets: GroupOffset[] }>;
  deleteGroup(group: string): Promise<void>;
  /** Reads a partition from an offset or a time (the first record at or after it); neither = from the earliest. */
  read(topic: string, partition: number, from?: { offset?: number; timestamp?: number; limit?: number }): Promise<ReadAnswer>;
}

class HttpAdmin implements Admin {
  private readonly base: string;
  private readonly fetchFn: typeof fetch;

  constructor(private readonly o: AdminOptions) {
    this.base = o.url.replace(/\/+$/, '');
    this.fetchFn = o.fetch ?? ((...args) => fetch(...args));
  }

  private async call<T>(method: string, path: string, body?: unknown): Promise<T> {
    const headers: Record<string, string> = { accept: 'application/json' };
    if (body !== undefined) headers['content-type'] = 'application/json';
    if (this.o.token !== undefined) headers.authorization = `Bearer ${await resolveToken(this.o.token)}`;
    let res: Response;
    try {
      res = await this.fetchFn(`${this.base}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    } catch (err) {
      throw new ClientError('DISCONNECTED', `cannot reach the hub at ${this.base || '(this page)'}: ${(err as Error).message}`, { cause: err });
    }
    if (res.status === 204) return undefined as T;
    const text = await res.text();
    let doc: unknown;
    try {
      doc = text ? JSON.parse(text) : undefined;
    } catch {
      throw new TributaryError('INTERNAL', `the hub answered ${res.status} with a body that is not JSON: ${text.slice(0, 120)}`);
    }
    if (!res.ok) {
      const e = (doc as { error?: Record<string, unknown> } | undefined)?.error;
      if (e) throw errorFromWire(e);
      throw new TributaryError('INTERNAL', `the hub answered ${res.status}`);
    }
    return doc as T;
  }

  async listTopics(): Promise<TopicSummary[]> {
    return (await this.call<{ topics: TopicSummary[] }>('GET', '/v1/topics')).topics;
  }

  describeTopic(topic: string): Promise<TopicDescription> {
    return this.call('GET', `/v1/topics/${encodeURIComponent(topic)}`);
  }

  createTopic(name: string, partitions?: number, config?: Record<string, unknown>): Promise<TopicDescription> {
    return this.call('POST', '/v1/topics', { name, partitions, config });
  }

  deleteTopic(topic: string): Promise<void> {
    return this.call('DELETE', `/v1/topics/${encodeURIComponent(topic)}`);
  }

  async listGroups(): Promise<GroupSummary[]> {
    return (await this.call<{ groups: GroupSummary[] }>('GET', '/v1/groups')).groups;
  }

  describeGroup(group: string): Promise<GroupDescription> {
    return this.call('GET', `/v1/groups/${encodeURIComponent(group)}`);
  }

  resetGroup(group: string, topic: string, to: ResetTarget, partitions?: number[]): Promise<{ offsets: GroupOffset[] }> {
    return this.call('POST', `/v1/groups/${encodeURIComponent(group)}/reset`, { topic, to, partitions });
  }

  deleteGroup(group: string): Promise<void> {
    return this.call('DELETE', `/v1/groups/${encodeURIComponent(group)}`);
  }

  read(topic: string, partition: number, from: { offset?: number; timestamp?: number; limit?: number } = {}): Promise<ReadAnswer> {
    const q = new URLSearchParams();
    if (from.offset !== undefined) q.set('offset', String(from.offset));
    if (from.timestamp !== undefined) q.set('timestamp', String(from.timestamp));
    if (from.limit !== undefined) q.set('limit', String(from.limit));
    const qs = q.toString();
    return this.call('GET', `/v1/topics/${encodeURIComponent(topic)}/partitions/${partition}/records${qs ? `?${qs}` : ''}`);
  }
}

/** A client of the hub's HTTP API. */
export function createAdmin(options: AdminOptions): Admin {
  if (typeof options?.url !== 'string') throw new TypeError('createAdmin needs { url }');
  return new HttpAdmin(options);
}

/** The WebSocket endpoint of a hub given by its HTTP base URL (http → ws, https → wss, + /v1/ws). */
export function webSocketUrlOf(httpUrl: string): string {
  const u = new URL(httpUrl);
  u.protocol = u.protocol === 'https:' ? 'wss:' : 'ws:';
  u.pathname = `${u.pathname.replace(/\/+$/, '')}/v1/ws`;
  u.search = '';
  u.hash = '';
  return u.toString();
}
