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
 */
import { createInbox, type MsgHdrs, type Msg, type NatsConnection, type PubAck, type Subscription } from 'nats';

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

interface Waiter {
  resolve: (ack: PubAck) => void;
  reject: (err: Error) => void;
  deadline: number;
}

/** How often unanswered publishes are looked for (a publish's timeout is its deadline plus up to this). */
const SWEEP_EVERY_MS = 250;

const utf8 = new TextDecoder();

export interface PublishExpect {
  msgId: string;
  lastSequence: number;
  lastMsgId?: string;
  lastSubjectSequence?: number;
}

export class AckedPublisher {
  private readonly inbox = createInbox();
  private readonly sub: Subscription;
  private readonly waiting = new Map<string, Waiter>();
  private next = 0;
  private sweeper: NodeJS.Timeout | null = null;
  private closed = false;

  constructor(private readonly nc: NatsConnection) {
    this.sub = nc.subscribe(`${this.inbox}.*`, { callback: (err, msg) => (err ? this.failAll(err) : this.onReply(msg)) });
  }

  /** Publishes `data` with JetStream's dedup and expectation headers set into `h`; settles with the PubAck. */
  publish(subject: string, data: Uint8Array, h: MsgHdrs, expect: PublishExpect, timeoutMs: number): Promise<PubAck> {
    if (this.closed) return Promise.reject(new JsPublishError('publisher closed', undefined, 'CLOSED'));
    h.set('Nats-Msg-Id', expect.msgId);
    h.set('Nats-Expected-Last-Sequence', String(expect.lastSequence));
    if (expect.lastMsgId) h.set('Nats-Expected-Last-Msg-Id', expect.lastMsgId);
    if (expect.lastSubjectSequence !== undefined) h.set('Nats-Expected-Last-Subject-Sequence', String(expect.lastSubjectSequence));
    const token = (++this.next).toString(36);
    return new Promise<PubAck>((resolve, reject) => {
      try {
        this.nc.publish(subject, data, { reply: `${this.inbox}.${token}`, headers: h });
      } catch (err) {
        reject(err as Error);
        return;
      }
      this.waiting.set(token, { resolve, reject, deadline: Date.now() + timeoutMs });
      if (!this.sweeper) {
        this.sweeper = setInterval(() => this.sweep(), SWEEP_EVERY_MS);
        this.sweeper.unref();
      }
    });
  }

  private onReply(msg: Msg): void {
    const token = msg.subject.slice(this.inbox.length + 1);
    const w = this.waiting.get(token);
    if (!w) return; // answered after its deadline
    this.waiting.delete(token);
    const status = msg.headers?.code ?? 0;
    if (status >= 400 || msg.data.length === 0) {
      w.reject(new JsPublishError(status === 503 ? `no stream answers on ${msg.subject} (503)` : `JetStream answered status ${status}`, undefined, String(status || 'EMPTY')));
      return;
    }
    let body: { stream?: string; seq?: number; duplicate?: boolean; domain?: string; error?: { code: number; err_code: number; description: string } };
    try {
      body = JSON.parse(utf8.decode(msg.data)) as typeof body;
    } catch {
      w.reject(new JsPublishError('JetStream answered a publish with something other than JSON'));
      return;
    }
    if (body.error) w.reject(new JsPublishError(body.error.description, body.error, String(body.error.code)));
    else if (!body.stream || typeof body.seq !== 'number') w.reject(new JsPublishError('JetStream answered a publish without a stream and sequence'));
    else w.resolve({ stream: body.stream, seq: body.seq, duplicate: body.duplicate === true, domain: body.domain ?? '' });
  }

  private sweep(): void {
    const now = Date.now();
    for (const [token, w] of this.waiting) {
      if (w.deadline > now) continue;
      this.waiting.delete(token);
      w.reject(new JsPublishError('TIMEOUT: no PubAck in time', undefined, 'TIMEOUT'));
    }
    if (this.waiting.size === 0 && this.sweeper) {
      clearInterval(this.sweeper);
      this.sweeper = null;
    }
  }

  private failAll(err: unknown): void {
    const e = new JsPublishError(`publish inbox failed: ${String(err)}`);
    for (const w of this.waiting.values()) w.reject(e);
    this.waiting.clear();
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
