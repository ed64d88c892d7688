/**
 * The few HTTP calls connectors make to the hub beside the web client:
 * a topic's partitions and high watermarks (for lag), and a partition's
 * newest records (where a source resumes). The HTTP API is the public one
 * documented in docs/http-api.md.
 */
import { TributaryError, type ErrorCode } from '../protocol/errors.ts';

export interface TopicOffsets {
  partitions: number;
  offsets: Array<{ partition: number; earliest: number; highWatermark: number }>;
}

export interface JsonRecord {
  offset: number;
  timestamp: number;
  key: string | null;
  value: unknown;
  headers: Array<[string, unknown]>;
}

/** ws://h:p/v1/ws → http://h:p (wss → https). */
export function httpBaseOf(wsUrl: string): string {
  const u = new URL(wsUrl);
  u.protocol = u.protocol === 'wss:' ? 'https:' : u.protocol === 'ws:' ? 'http:' : u.protocol;
  return u.origin;
}

const REQUEST_TIMEOUT_MS = 30_000;

export class HubHttp {
  constructor(
    readonly baseUrl: string,
    private readonly token?: () => Promise<string | undefined>,
  ) {}

  private async call(method: string, path: string, body?: unknown): Promise<unknown> {
    const headers: Record<string, string> = { accept: 'application/json' };
    const token = await this.token?.();
    if (token) headers.authorization = `Bearer ${token}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    const res = await fetch(this.baseUrl + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
    const text = await res.text();
    const doc = text ? (JSON.parse(text) as Record<string, unknown>) : {};
    if (!res.ok) {
      const err = (doc.error ?? {}) as { code?: string; message?: string };
      throw new TributaryError((err.code as ErrorCode) ?? 'INTERNAL', err.message ?? `${method} ${path}: HTTP ${res.status}`);
    }
    return doc;
  }

  async topic(topic: string): Promise<TopicOffsets> {
    return (await this.call('GET', `/v1/topics/${encodeURIComponent(topic)}`)) as TopicOffsets;
  }

  /** Creates the topic unless it exists (409 TOPIC_EXISTS is fine). */
  async ensureTopic(topic: string, partitions?: number): Promise<void> {
    try {
      await this.call('POST', '/v1/topics', partitions ? { name: topic, partitions } : { name: topic });
    } catch (e) {
      if (!(e instanceof TributaryError && e.code === 'TOPIC_EXISTS')) throw e;
    }
  }

  async read(topic: string, partition: number, offset: number, limit: number): Promise<{ records: JsonRecord[]; nextOffset: number; highWatermark: number }> {
    const q = `offset=${offset}&limit=${limit}`;
    return (await this.call('GET', `/v1/topics/${encodeURIComponent(topic)}/partitions/${partition}/records?${q}`)) as { records: JsonRecord[]; nextOffset: number; highWatermark: number };
  }
}
