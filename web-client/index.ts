/**
 * Tributary's client for browsers and Node: `createClient()`.
 *
 *   const client = createClient({ url: 'ws://127.0.0.1:8080/v1/ws', token, outbox: 'indexeddb', name: 'app' })
 *   await client.send('orders', { key: 'order-1', value: { total: 12 } })  // durable in the outbox, works offline
 *   await client.flush()                                                     // every event queued so far is in the log
 *   const sub = client.subscribe('orders', { from: 'earliest' }, async (r) => { ... })
 *
 * docs/web-client.md has the guarantees, the outbox's durability and the limits.
 */
import { TributaryError } from '../protocol/index.ts';
import { Connection, type ConnectionState, type WebSocketConstructor } from './connection.ts';
import { Subscription, type RecordHandler, type SubscribeOptions, type SubscriptionHandle } from './consumer.ts';
import { Emitter } from './emitter.ts';
import { directProduce, produceBatches, topicMetadata, type BatchesProduceResult, type DirectProduceOptions, type DirectProduceResult, type TopicMetadata } from './direct-produce.ts';
import { ClientError } from './errors.ts';
import type { SendEvent } from './event-input.ts';
import { IdbOutboxStore, type IdbDurability } from './outbox-idb.ts';
import { MemoryOutboxStore } from './outbox-memory.ts';
import { DEFAULT_OUTBOX_BOUNDS, type FailedEvent, type OutboxStore } from './outbox.ts';
import { Producer, type AckInfo } from './producer.ts';
import { loadNodeRuntime, webSocketClass } from './runtime.ts';
import { readTokenClaims, resolveToken, type TokenSource } from './token.ts';

export { ClientError, type ClientErrorCode } from './errors.ts';
export { TributaryError, LIMITS } from '../protocol/index.ts';
export type { ConnectionState, WebSocketConstructor, WebSocketLike } from './connection.ts';
export type { BatchHandler, ConsumedRecord, RecordHandler, SubscribeOptions, SubscriptionHandle } from './consumer.ts';
export type { RecordsView } from './records-view.ts';
export type { SendEvent } from './event-input.ts';
export type { FailedEvent, OutboxBounds, OutboxEvent, OutboxStats, OutboxStore, NewOutboxEvent, Positions } from './outbox.ts';
export type { AckInfo } from './producer.ts';
export type { BatchesProduceResult, DirectProduceOptions, DirectProduceResult, TopicMetadata } from './direct-produce.ts';
export { BatchBuilder } from './batch-builder.ts';
export { WorkerWebSocket, runSocketWorker } from './worker-socket.ts';
export type { TokenSource } from './token.ts';
export { createAdmin, webSocketUrlOf } from './admin.ts';
export type { Admin, AdminOptions, GroupDescription, GroupMember, GroupOffset, GroupSummary, HttpRecord, PartitionOffsets, ReadAnswer, ResetTarget, TopicDescription, TopicSummary } from './admin.ts';
export { IdbOutboxStore, MemoryOutboxStore };

export interface ClientOptions {
  /** The hub's WebSocket endpoint, e.g. ws://127.0.0.1:8080/v1/ws. */
  url: string;
  /** A token, or a function returning a fresh one (called on every connect and before expiry). */
  token?: TokenSource;
  /** Where unsent events wait. Browser default 'indexeddb', Node default 'memory'. */
  outbox?: 'indexeddb' | 'memory' | { file: string } | OutboxStore;
  /** Outbox name: the producer id (and the drain lock shared by tabs) is kept per name. Default 'default'. */
  name?: string;
  /** IndexedDB transaction durability: 'relaxed' (default) or 'strict'; see docs/web-client.md. */
  durability?: IdbDurability;
  /** Outbox bounds: at them, `send` waits for room up to `maxBlockMs`, then rejects with OUTBOX_FULL. */
  maxOutboxEvents?: number;
  maxOutboxBytes?: number;
  /** How long `send`/`sendMany` wait for room in a full outbox (Kafka's max.block.ms). Default 60 s; 0 rejects at once. */
  maxBlockMs?: number;
  /** Produce requests awaiting their ack at once per topic (Kafka's max.in.flight). Default 5. */
  maxInFlightBatches?: number;
  /** Records per produce request. Default 1000 (4000 with the IndexedDB outbox: see IdbOutboxStore.drainBatchRecords). */
  maxBatchRecords?: number;
  /** Bytes of records per produce request. Default 1 MiB (the hub's frame limit is 4 MiB). */
  maxBatchBytes?: number;
  /** WebSocket class; default the global one, or `ws` in Node. */
  WebSocket?: WebSocketConstructor;
  /** Reconnect backoff: full jitter over [0, min(max, initial·2^attempt)]. Defaults 250 ms and 30 s. */
  backoffInitialMs?: number;
  backoffMaxMs?: number;
  /** A request without a reply for this long drops the connection (and re-sends on a new one). Default 30 s. */
  requestTimeoutMs?: number;
  /** After this long without a frame from the hub, ping it; no answer within min(requestTimeoutMs, 10 s) reconnects. Default 25 s. */
  keepAliveMs?: number;
}

export interface ClientEvents extends Record<string, unknown> {
  state: ConnectionState;
  ack: AckInfo;
  error: Error;
}

export interface Client {
  /** Validates the event and resolves once it is durably in the outbox (works offline). */
  send(topic: string, event: SendEvent): Promise<void>;
  /**
   * Validates every event, then queues them all in send order in one outbox
   * transaction (one IndexedDB transaction or fsync, however many events).
   */
  sendMany(topic: string, events: SendEvent[]): Promise<void>;
  /** Resolves when every event in the outbox at the time of the call is acked (or failed for good). */
  flush(): Promise<void>;
  /** Events in the outbox not yet acked, including ones an earlier page, tab or process left. */
  pending(): Promise<number>;
  /** Events the hub refused for good (with the code), oldest first. */
  failed(): Promise<FailedEvent[]>;
  /** Forgets the failed list. */
  clearFailed(): Promise<void>;
  /** `handler` per record, or `opts.onBatch` / `opts.onView` per records frame (fast consumers); one of the three. */
  subscribe(topic: string, opts: SubscribeOptions, handler?: RecordHandler): SubscriptionHandle;
  /**
   * Sends events to one partition now, under the caller's producer id and
   * sequences (no outbox): for code whose own state decides what to resend
   * after a crash (streams, connectors). Retries retriable failures until
   * `timeoutMs`; a retry of appended sequences answers `duplicate: true`.
   */
  produce(topic: string, events: SendEvent[], opts: DirectProduceOptions): Promise<DirectProduceResult>;
  /**
   * produce() for batches the caller wrote with BatchBuilder and sealed with
   * their sequences (dense from one batch to the next): no per-event work
   * here. Answers the offset of the last record.
   */
  produceBatches(topic: string, partition: number, batches: readonly Uint8Array[], opts?: { timeoutMs?: number }): Promise<BatchesProduceResult>;
  /** The topic's partition count; UNKNOWN_TOPIC when it does not exist. */
  metadata(topic: string): Promise<TopicMetadata>;
  on<K extends keyof ClientEvents>(event: K, listener: (value: ClientEvents[K]) => void): () => void;
  off<K extends keyof ClientEvents>(event: K, listener: (value: ClientEvents[K]) => void): void;
  readonly state: ConnectionState;
  /** The producer id kept with the outbox (after the outbox opened). */
  readonly producerId: Promise<string>;
  close(): Promise<void>;
}

function defaultOutbox(): 'indexeddb' | 'memory' {
  return typeof indexedDB !== 'undefined' ? 'indexeddb' : 'memory';
}

async function makeStore(o: ClientOptions, name: string): Promise<OutboxStore> {
  const kind = o.outbox ?? defaultOutbox();
  if (kind === 'indexeddb') return new IdbOutboxStore(name, o.durability ?? 'relaxed');
  if (kind === 'memory') return new MemoryOutboxStore(name);
  if (typeof kind === 'object' && 'file' in kind && typeof kind.file === 'string') return (await loadNodeRuntime()).fileOutbox(kind.file);
  return kind as OutboxStore;
}

class TributaryClient extends Emitter<ClientEvents> implements Client {
  private readonly ready: Promise<{ conn: Connection; producer: Producer; store: OutboxStore }>;
  /**
   * The producer once `ready` resolved: send() and sendMany() calls go straight to it, without a promise
   * hop each (and in call order: before, they all wait for `ready`, whose reactions run in order).
   */
  private producer?: Producer;
  private conn?: Connection;
  private readonly subs = new Set<Subscription>();
  private closed = false;
  readonly producerId: Promise<string>;

  constructor(private readonly o: ClientOptions) {
    super();
    if (typeof o?.url !== 'string') throw new TypeError('createClient needs { url }');
    const name = o.name ?? 'default';
    this.ready = (async () => {
      const [WebSocket, store] = await Promise.all([o.WebSocket ?? webSocketClass(), makeStore(o, name)]);
      const conn = new Connection({
        url: o.url,
        token: o.token,
        clientName: name,
        WebSocket,
        backoffInitialMs: o.backoffInitialMs,
        backoffMaxMs: o.backoffMaxMs,
        requestTimeoutMs: o.requestTimeoutMs,
        keepAliveMs: o.keepAliveMs,
      } as ConstructorParameters<typeof Connection>[0]);
      const producer = new Producer(
        {
          store,
          name,
          bounds: { maxEvents: o.maxOutboxEvents ?? DEFAULT_OUTBOX_BOUNDS.maxEvents, maxBytes: o.maxOutboxBytes ?? DEFAULT_OUTBOX_BOUNDS.maxBytes },
          maxInFlightBatches: Math.max(1, o.maxInFlightBatches ?? 5),
          maxBatchRecords: o.maxBatchRecords ?? store.drainBatchRecords ?? 1000,
          maxBatchBytes: o.maxBatchBytes ?? 1024 * 1024,
          maxBlockMs: o.maxBlockMs ?? 60_000,
          subject: () => this.subject(),
        },
        conn,
        { ack: (a) => this.emit('ack', a), error: (e) => this.emit('error', e) },
      );
      conn.on('state', (s) => this.emit('state', s));
      conn.on('error', (e) => this.emit('error', e));
      conn.on('push', (f) => {
        const subId = (f as { sub?: unknown }).sub;
        if (typeof subId !== 'number') return;
        for (const s of this.subs) if (s.matches(subId)) s.push(f);
      });
      this.conn = conn;
      if (this.closed) conn.close();
      else conn.start();
      await producer.open();
      return { conn, producer, store };
    })();
    this.producerId = this.ready.then(({ producer }) => {
      this.producer = producer;
      return producer.open().then(() => producer.id);
    });
    // Errors surface through the methods that await `ready`; keep an early failure from being unhandled.
    this.ready.catch((err) => this.emit('error', err as Error));
  }

  /** Subject new events are queued under: the live session's, else that of the token the connection resolved last. */
  private async subject(): Promise<string> {
    const t = this.o.token;
    if (t === undefined) return '';
    if (typeof t === 'string' || !this.conn) return readTokenClaims(await resolveToken(t)).sub;
    return this.conn.tokenSubject().catch(() => this.conn?.subject ?? '');
  }

  get state(): ConnectionState {
    return this.conn?.state ?? 'waiting';
  }

  send(topic: string, event: SendEvent): Promise<void> {
    if (this.closed) return Promise.reject(new ClientError('CLOSED', 'client is closed'));
    if (this.producer) return this.producer.send(topic, event);
    return this.ready.then(({ producer }) => producer.send(topic, event));
  }

  sendMany(topic: string, events: SendEvent[]): Promise<void> {
    // Straight to the producer as send() goes: a sendMany between sends of one tick keeps its place.
    if (this.closed) return Promise.reject(new ClientError('CLOSED', 'client is closed'));
    if (this.producer) return this.producer.sendMany(topic, events);
    return this.ready.then(({ producer }) => producer.sendMany(topic, events));
  }

  async flush(): Promise<void> {
    const { producer } = await this.ready;
    return producer.flush();
  }

  async pending(): Promise<number> {
    const { producer } = await this.ready;
    return producer.pending();
  }

  async failed(): Promise<FailedEvent[]> {
    const { producer } = await this.ready;
    return producer.failed();
  }

  async clearFailed(): Promise<void> {
    const { store } = await this.ready;
    return store.clearFailed();
  }

  subscribe(topic: string, opts: SubscribeOptions, handler?: RecordHandler): SubscriptionHandle {
    if (this.closed) throw new ClientError('CLOSED', 'client is closed');
    if (+!!handler + +!!opts?.onBatch + +!!opts?.onView !== 1) throw new TributaryError('BAD_REQUEST', 'subscribe needs one of a record handler, onBatch or onView');
    let subscription: Subscription | undefined;
    let closedEarly = false;
    const ready = this.ready.then(({ conn, store }) => {
      if (closedEarly || this.closed) return;
      subscription = new Subscription(
        conn,
        opts.persist ? store : undefined,
        topic,
        opts,
        handler,
        (e) => this.emit('error', e),
        (s) => this.subs.delete(s),
      );
      this.subs.add(subscription);
    });
    ready.catch(() => undefined);
    return {
      positions: () => subscription?.positions() ?? {},
      assignment: () => subscription?.assignment() ?? [],
      commit: async (offsets) => {
        await ready;
        if (!subscription) throw new ClientError('CLOSED', 'subscription is closed');
        return subscription.commit(offsets);
      },
      close: () => {
        closedEarly = true;
        void subscription?.close();
      },
    };
  }

  async produce(topic: string, events: SendEvent[], opts: DirectProduceOptions): Promise<DirectProduceResult> {
    if (this.closed) throw new ClientError('CLOSED', 'client is closed');
    const { conn } = await this.ready;
    return directProduce(conn, topic, events, opts);
  }

  async produceBatches(topic: string, partition: number, batches: readonly Uint8Array[], opts?: { timeoutMs?: number }): Promise<BatchesProduceResult> {
    if (this.closed) throw new ClientError('CLOSED', 'client is closed');
    const { conn } = await this.ready;
    return produceBatches(conn, topic, partition, batches, opts?.timeoutMs);
  }

  async metadata(topic: string): Promise<TopicMetadata> {
    if (this.closed) throw new ClientError('CLOSED', 'client is closed');
    const { conn } = await this.ready;
    return topicMetadata(conn, topic);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    // Group members commit what they handled and leave before the connection goes.
    await Promise.all([...this.subs].map((s) => s.close()));
    let parts: Awaited<typeof this.ready> | undefined;
    try {
      parts = await this.ready;
    } catch {
      return;
    }
    await parts.producer.close();
    parts.conn.close();
    // A store the application passed in is the application's to close.
    if (typeof this.o.outbox !== 'object' || 'file' in this.o.outbox) await parts.store.close();
  }
}

/** Creates a client; it connects at once and keeps reconnecting until closed. */
export function createClient(options: ClientOptions): Client {
  return new TributaryClient(options);
}
