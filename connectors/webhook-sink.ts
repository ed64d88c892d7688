/**
 * HTTP webhook sink: POSTs batches of records as JSON to a URL.
 *
 * Body: `{"records":[{"id":"topic/partition/offset","topic","partition",
 * "offset","timestamp","key","value","headers"}]}`; `id` lets the endpoint
 * drop a batch it sees twice (delivery is at least once: a crash between
 * the endpoint's 2xx and the offset commit sends that batch again).
 *
 * Answers: 2xx delivered. 408, 429, 5xx and network errors are the endpoint
 * being down: the runtime retries the batch with backoff. Any other 4xx is a
 * refusal for good: the batch is split and each record POSTed alone, and the
 * records refused alone go to the dead-letter topic with the reason in
 * headers, so one bad record neither blocks the stream nor is lost.
 */
import type { Client } from '../web-client/index.ts';
import type { Settings } from './config.ts';
import type { ConnectorStatus, ConsumedRecord, PartitionOffsets, RecordsView, SinkTask } from './task.ts';

export interface WebhookSinkOptions {
  connector: string;
  url: string;
  headers: Record<string, string>;
  timeoutMs: number;
  /** Topic for records refused for good (default `<name>.dlq`). */
  deadLetterTopic: string;
}

export function webhookSinkOptions(connector: string, s: Settings): WebhookSinkOptions {
  const headers = (s.map('headers') ?? {}) as Record<string, string>;
  for (const [k, v] of Object.entries(headers)) if (typeof v !== 'string') throw new Error(`connector ${connector}: headers.${k} must be a string`);
  const url = s.string('url');
  if (!/^https?:\/\//.test(url)) throw new Error(`connector ${connector}: url must be http:// or https://`);
  return { connector, url, headers, timeoutMs: s.int('timeoutMs', 10_000, 100, 600_000), deadLetterTopic: s.string('deadLetterTopic', `${connector}.dlq`) };
}

/** The endpoint refused for good (a 4xx other than 408 and 429). */
class Refused extends Error {
  constructor(
    readonly status: number,
    readonly body: string,
  ) {
    super(`endpoint refused with ${status}: ${body.slice(0, 200)}`);
  }
}

const b64 = (b: Uint8Array): { $base64: string } => ({ $base64: Buffer.from(b).toString('base64') });

function toJson(r: ConsumedRecord): Record<string, unknown> {
  return {
    id: `${r.topic}/${r.partition}/${r.offset}`,
    topic: r.topic,
    partition: r.partition,
    offset: r.offset,
    timestamp: r.timestamp,
    key: r.key instanceof Uint8Array ? b64(r.key) : r.key,
    value: r.value instanceof Uint8Array ? b64(r.value) : r.value,
    headers: r.headers.map(([k, v]) => [k, typeof v === 'string' ? v : b64(v)]),
  };
}

const id = (r: ConsumedRecord): string => `${r.partition}/${r.offset}`;

export class WebhookSink implements SinkTask {
  /** Records of the current batch already delivered or dead-lettered: a retried put skips them. */
  private done = new Set<string>();

  constructor(
    private readonly o: WebhookSinkOptions,
    private readonly client: Client,
    private readonly status: () => ConnectorStatus,
  ) {}

  async start(): Promise<void> {}

  async open(): Promise<undefined> {
    return undefined; // offsets live in the runtime's offset store
  }

  async put(batch: readonly RecordsView[]): Promise<PartitionOffsets> {
    // A record object each: the JSON body needs them anyway.
    const records: ConsumedRecord[] = [];
    for (const v of batch) for (let i = 0; i < v.count; i++) records.push(v.record(i));
    const todo = records.filter((r) => !this.done.has(id(r)));
    if (todo.length) {
      try {
        await this.post(todo);
        for (const r of todo) this.done.add(id(r));
      } catch (e) {
        if (!(e instanceof Refused)) throw e;
        // One record (or more) is refused: find which, alone.
        for (const r of todo) {
          if (this.done.has(id(r))) continue;
          try {
            await this.post([r]);
          } catch (e2) {
            if (!(e2 instanceof Refused)) throw e2;
            await this.deadLetter(r, e2);
          }
          this.done.add(id(r));
        }
      }
    }
    this.done = new Set();
    const safe: PartitionOffsets = new Map();
    for (const r of records) safe.set(r.partition, r.offset + 1);
    return safe;
  }

  private async post(records: ConsumedRecord[]): Promise<void> {
    const res = await fetch(this.o.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...this.o.headers },
      body: JSON.stringify({ records: records.map(toJson) }),
      signal: AbortSignal.timeout(this.o.timeoutMs),
    });
    const text = await res.text().catch(() => '');
    if (res.ok) return;
    if (res.status >= 400 && res.status < 500 && res.status !== 408 && res.status !== 429) throw new Refused(res.status, text);
    throw new Error(`endpoint answered ${res.status}: ${text.slice(0, 200)}`);
  }

  private async deadLetter(r: ConsumedRecord, why: Refused): Promise<void> {
    await this.client.send(this.o.deadLetterTopic, {
      key: r.key,
      value: r.value,
      timestamp: r.timestamp,
      headers: [
        ...r.headers,
        ['tributary.dlq.connector', this.o.connector],
        ['tributary.dlq.topic', r.topic],
        ['tributary.dlq.partition', String(r.partition)],
        ['tributary.dlq.offset', String(r.offset)],
        ['tributary.dlq.status', String(why.status)],
        ['tributary.dlq.reason', why.body.slice(0, 1000)],
      ],
    });
    // In the log before the offset moves past the record.
    await this.client.flush();
    this.status().deadLettered++;
  }

  async stop(): Promise<void> {}
}
