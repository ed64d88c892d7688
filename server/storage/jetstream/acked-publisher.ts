/**
 * JetStream publishes awaiting their PubAck, without the client library's
 * request machinery. `js.publish` makes a request per message: a timer, a
 * deferred, a mux entry, and on every reply (success included) an Error
 * object for the cancelled request, whose stack capture alone was ~20 µs
 * of the ~140 µs the hub spent per append in the JetStream bench (`node
 * --cpu-prof`: NatsError in core.js, the largest single item). Here one
 * subscription on a per-store inbox answers every publish, by the token at
 * the end of its reply subject; a sweep fails what is not answered in time.
 *
 * The wire protocol is JetStream's own (ADR-1 and the `Nats-Expected-*`
 * headers): the reply is a JSON PubAck `{stream, seq, duplicate?}` or
 * `{error: {code, err_code, description}}`, or a 503 status when no stream
 * listens on the subject. Across a reconnect the client re-subscribes the
 * inbox and sends what it buffered, as it does for requests.
 *
 * Per publish, no promise and no closure: the outcome goes to the caller's
 * sink with the caller's item. The header block is written as one string
 * (publishHeaders) instead of through the client's MsgHdrs, whose set()
 * canonicalises, validates and searches its keys per call and whose
 * encode() joins them again: with the promise chain, ~8 µs of the ~11 µs
 * per batch the engine spent over the bare client (`node --cpu-prof`,
 * R1 produce, 256 in flight).
 */
import { createInbox, type MsgHdrs, type Msg, type NatsConnection, type Subscription } from 'nats';

/** A refusal from JetStream (err_code as in its API errors), a 503 (no stream), or a timeout. */
class JsPublishError extends Error {
  constructor(
    message: string,
    readonly api_error?: { code: number; err_code: number; description: string },
    readonly code?: string,
  ) {
    super(message);
    this.name = 'JsPublishError';
  }
}

/** Where a publish's outcome goes, with the item it was given. */
export interface AckSink<T> {
  /** Stored at stream sequence `seq` (a duplicate's: where the first copy of its message id is). */
  onAck(item: T, seq: number): void;
  onFail(item: T, err: Error): void;
}

interface Waiter {
  sink: AckSink<unknown>;
  item: unknown;
  deadline: number;
}

/** How often unanswered publishes are looked for (a publish's timeout is its deadline plus up to this). */
const SWEEP_EVERY_MS = 250;

const utf8 = new TextDecoder();
const CR_LF = /[\r\n]/;

/**
 * The header block of a publish (NATS/1.0, `Name: value` lines, a blank
 * line), as the client's MsgHdrs.encode() writes it: JetStream's message id
 * (duplicate detection) and expected last sequence, the expected last
 * message id when `lastMsgId` is not '', the expected last subject sequence
 * when `lastSubjectSequence` >= 0, then `own`: the caller's lines, each
 * ending in CRLF. Ids with a CR or LF are refused (a header line each).
 */
export function publishHeaders(msgId: string, lastSequence: number, lastMsgId: string, lastSubjectSequence: number, own: string): Uint8Array {
  if (CR_LF.test(msgId) || CR_LF.test(lastMsgId)) throw new Error('a message id may not hold CR or LF');
  let s = `NATS/1.0\r\nNats-Msg-Id: ${msgId}\r\nNats-Expected-Last-Sequence: ${lastSequence}\r\n`;
  if (lastMsgId) s += `Nats-Expected-Last-Msg-Id: ${lastMsgId}\r\n`;
  if (lastSubjectSequence >= 0) s += `Nats-Expected-Last-Subject-Sequence: ${lastSubjectSequence}\r\n`;
  return Buffer.from(`${s}${own}\r\n`, 'utf8');
}

/**
 * A header block already encoded, in the client's hands for one publish: its publish sends
 * `options.headers.encode()` (nats.js protocol.ts, HPUB) and reads nothing else of them. One instance,
 * set before each publish, which encodes synchronously.
 */
class EncodedHeaders {
  bytes: Uint8Array = new Uint8Array(0);
  encode(): Uint8Array {
    return this.bytes;
  }
}

export class AckedPublisher {
  private readonly inbox = createInbox();
  private readonly sub: Subscription;
  private readonly waiting = new Map<string, Waiter>();
  private next = 0;
  private sweeper: NodeJS.Timeout | null = null;
  private closed = false;
  private readonly block = new EncodedHeaders();

  constructor(private readonly nc: NatsConnection) {
    this.sub = nc.subscribe(`${this.inbox}.*`, {
      callback: (err, msg) => {
        try {
          if (err) this.failAll(err);
          else this.onReply(msg);
        } catch (e) {
          // A sink's fault, not the connection's: raised outside the client's read loop, as an unhandled rejection was.
          queueMicrotask(() => {
            throw e;
          });
        }
      },
    });
  }

  /**
   * Publishes `data` with the header block `headers` (publishHeaders); the PubAck or the failure goes to
   * `sink` with `item`, never synchronously.
   */
  publish<T>(subject: string, data: Uint8Array, headers: Uint8Array, timeoutMs: number, sink: AckSink<T>, item: T): void {
    if (this.closed) return failLater(sink, item, new JsPublishError('publisher closed', undefined, 'CLOSED'));
    const token = (++this.next).toString(36);
    this.block.bytes = headers;
    try {
      this.nc.publish(subject, data, { reply: `${this.inbox}.${token}`, headers: this.block as unknown as MsgHdrs });
    } catch (err) {
      return failLater(sink, item, err as Error);
    } finally {
      this.block.bytes = NO_BYTES;
    }
    this.waiting.set(token, { sink: sink as AckSink<unknown>, item, deadline: Date.now() + timeoutMs });
    if (!this.sweeper) {
      this.sweeper = setInterval(() => this.sweep(), SWEEP_EVERY_MS);
      this.sweeper.unref();
    }
  }

  private onReply(msg: Msg): void {
    const token = msg.subject.slice(this.inbox.length + 1);
    const w = this.waiting.get(token);
    if (!w) return; // answered after its deadline
    this.waiting.delete(token);
    const status = msg.headers?.code ?? 0;
    if (status >= 400 || msg.data.length === 0) {
      w.sink.onFail(w.item, new JsPublishError(status === 503 ? `no stream answers on ${msg.subject} (503)` : `JetStream answered status ${status}`, undefined, String(status || 'EMPTY')));
      return;
    }
    let body: { stream?: string; seq?: number; error?: { code: number; err_code: number; description: string } };
    try {
      body = JSON.parse(utf8.decode(msg.data)) as typeof body;
    } catch {
      w.sink.onFail(w.item, new JsPublishError('JetStream answered a publish with something other than JSON'));
      return;
    }
    if (body.error) w.sink.onFail(w.item, new JsPublishError(body.error.description, body.error, String(body.error.code)));
    else if (!body.stream || typeof body.seq !== 'number') w.sink.onFail(w.item, new JsPublishError('JetStream answered a publish without a stream and sequence'));
    else w.sink.onAck(w.item, body.seq);
  }

  private sweep(): void {
    const now = Date.now();
    const late: Waiter[] = [];
    for (const [token, w] of this.waiting) {
      if (w.deadline > now) continue;
      this.waiting.delete(token);
      late.push(w);
    }
    for (const w of late) w.sink.onFail(w.item, new JsPublishError('TIMEOUT: no PubAck in time', undefined, 'TIMEOUT'));
    if (this.waiting.size === 0 && this.sweeper) {
      clearInterval(this.sweeper);
      this.sweeper = null;
    }
  }

  private failAll(err: unknown): void {
    const e = new JsPublishError(`publish inbox failed: ${String(err)}`);
    const all = [...this.waiting.values()];
    this.waiting.clear();
    for (const w of all) w.sink.onFail(w.item, e);
  }

  close(): void {
    this.closed = true;
    if (this.sweeper) clearInterval(this.sweeper);
    this.sweeper = null;
    this.failAll('the store is closing');
    try {
      this.sub.unsubscribe();
    } catch {
      // The connection (a caller's own) is closed already: so is the subscription.
    }
  }
}

const NO_BYTES = new Uint8Array(0);

function failLater<T>(sink: AckSink<T>, item: T, err: Error): void {
  queueMicrotask(() => sink.onFail(item, err));
}
