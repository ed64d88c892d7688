/**
 * The WebSocket endpoint /v1/ws: upgrade (limits, principal), frame decode
 * (protocol's decoder, once, at the edge), authorization, and dispatch to
 * the broker. Every request frame gets exactly one reply: ok, ack or error
 * with its id.
 */
import { TributaryError, toTributaryError } from '../../protocol/errors.ts';
import { decodeClientFrame } from '../../protocol/frame-decoder.ts';
import { PROTOCOL_VERSION, WS_SUBPROTOCOL, type ClientFrame, type ProduceFrame, type SubscribeFrame } from '../../protocol/frames.ts';
import type { HubConfig } from '../config.ts';
import type { Logger } from '../logger.ts';
import { Connection, type ConnectionEvents } from './connection.ts';
import { authorize, principalFor } from './principal.ts';
import type { TransportDeps } from './transport-deps.ts';
import type { Uws } from './uws.ts';
import type { WebSocket, WebSocketBehavior } from 'uWebSockets.js';

type UserData = { conn: Connection };

/** Frames above maxFrameBytes but within this slack get a 4413 with a reason; beyond it uWS closes with 1009. */
export const FRAME_SLACK_BYTES = 64 * 1024;

export class WsEndpoint {
  readonly connections = new Set<Connection>();
  private readonly events: ConnectionEvents;
  private readonly cfg: HubConfig;
  private readonly log: Logger;

  constructor(private readonly deps: TransportDeps) {
    this.cfg = deps.config;
    this.log = deps.log;
    const m = deps.metrics;
    this.events = {
      paused: () => m.pausedConnections.inc(),
      resumed: () => m.pausedConnections.dec(),
      slowConsumer: (c) => {
        m.slowConsumerCloses.inc();
        this.log.warn({ remote: c.remote, subject: c.principal.subject }, 'closing slow consumer');
      },
      subscriptionEnded: (c, sub) => this.endSubscription(c, sub),
      error: (e) => m.errors.inc({ code: e.code }),
    };
  }

  behavior(uws: Uws): WebSocketBehavior<UserData> {
    return {
      maxPayloadLength: this.cfg.maxFrameBytes + FRAME_SLACK_BYTES,
      idleTimeout: this.cfg.idleTimeoutMs === 0 ? 0 : Math.max(8, Math.round(this.cfg.idleTimeoutMs / 1000)),
      sendPingsAutomatically: true,
      // Above our own hard cap so that uWS never drops a frame before we close the connection ourselves.
      maxBackpressure: this.cfg.maxBufferedBytesPerConnection + this.cfg.maxFrameBytes + FRAME_SLACK_BYTES,
      closeOnBackpressureLimit: 0,
      compression: uws.DISABLED,
      upgrade: (res, req, context) => {
        const key = req.getHeader('sec-websocket-key');
        const protocols = req.getHeader('sec-websocket-protocol');
        const extensions = req.getHeader('sec-websocket-extensions');
        const remote = Buffer.from(res.getRemoteAddressAsText()).toString();
        let aborted = false;
        res.onAborted(() => {
          aborted = true;
        });
        const refuse = (err: TributaryError): void => {
          if (aborted) return;
          this.deps.metrics.errors.inc({ code: err.code });
          res.cork(() => {
            res.writeStatus(`${err.status} ${err.code}`).writeHeader('content-type', 'application/json').end(JSON.stringify(err.toJSON()), true);
          });
        };
        if (!this.deps.state.ready) return refuse(new TributaryError(this.deps.state.shuttingDown ? 'SHUTTING_DOWN' : 'NOT_READY'));
        const chosen = protocols.split(',').map((s) => s.trim()).includes(WS_SUBPROTOCOL) ? WS_SUBPROTOCOL : '';
        principalFor({ token: null }).then(
          (principal) => {
            if (aborted) return;
            const conn = new Connection(principal, remote, this.cfg, this.events);
            // Over the connection limit: upgrade anyway and close with 4429 and a reason, which a browser can read (an HTTP status it cannot).
            conn.refusal = this.deps.limits.openConnection();
            res.cork(() => res.upgrade<UserData>({ conn }, key, chosen, extensions, context));
          },
          (err: unknown) => refuse(toTributaryError(err)),
        );
      },
      open: (ws) => {
        const conn = ws.getUserData().conn;
        conn.ws = ws;
        if (conn.refusal) {
          conn.closeWith(conn.refusal);
          return;
        }
        this.connections.add(conn);
        this.deps.metrics.connections.inc();
        this.deps.metrics.connectionsTotal.inc();
      },
      message: (ws, message) => this.onMessage(ws, message),
      drain: (ws) => ws.getUserData().conn.onDrain(),
      close: (ws) => {
        const conn = ws.getUserData().conn;
        const counted = conn.refusal === null;
        if (conn.pausedSinceMs !== 0) this.deps.metrics.pausedConnections.dec();
        for (const sub of [...conn.subscriptions.keys()]) this.endSubscription(conn, sub);
        conn.markClosed();
        if (counted && this.connections.delete(conn)) {
          this.deps.limits.closeConnection();
          this.deps.metrics.connections.dec();
        }
      },
    };
  }

  /** Closes connections paused past the slow-consumer timeout. Called by the server's sweep timer. */
  sweep(nowMs: number): void {
    for (const c of this.connections) {
      if (c.pausedSinceMs !== 0 && nowMs - c.pausedSinceMs > this.cfg.slowConsumerTimeoutMs) {
        this.events.slowConsumer(c);
        c.closeWith(new TributaryError('SLOW_CONSUMER', `paused by backpressure for more than ${this.cfg.slowConsumerTimeoutMs} ms`));
      }
    }
  }

  /** Shutdown: close every connection with 1001 (going away). */
  closeAll(): void {
    for (const c of [...this.connections]) c.closeNormally(1001, 'SHUTTING_DOWN: hub is shutting down');
  }

  private endSubscription(conn: Connection, sub: number): void {
    const s = conn.subscriptions.get(sub);
    if (!s) return;
    conn.subscriptions.delete(sub);
    this.deps.broker.subscriptions.remove(s);
    this.deps.metrics.subscriptions.dec();
  }

  private onMessage(ws: WebSocket<UserData>, message: ArrayBuffer): void {
    const conn = ws.getUserData().conn;
    if (conn.closed) return;
    const bytes = new Uint8Array(message);
    const decoded = decodeClientFrame(bytes, this.cfg.maxFrameBytes);
    if (!decoded.ok) {
      if (decoded.error.code === 'FRAME_TOO_LARGE') {
        this.deps.metrics.limitRejections.inc({ limit: 'maxFrameBytes' });
        conn.closeWith(decoded.error);
        return;
      }
      conn.sendError(decoded.error, decoded.id);
      return;
    }
    const frame = decoded.frame;
    if (this.deps.state.shuttingDown && frame.t !== 'credit') {
      conn.sendError(new TributaryError('SHUTTING_DOWN'), 'id' in frame ? frame.id : undefined);
      return;
    }
    if (frame.t === 'credit') {
      const sub = conn.subscriptions.get(frame.sub);
      if (sub) sub.addCredit(frame.bytes);
      else conn.error(frame.sub, new TributaryError('UNKNOWN_SUBSCRIPTION', `no subscription ${frame.sub} on this connection`));
      return;
    }
    const refused = this.deps.limits.admitRequest(conn);
    if (refused) {
      conn.sendError(refused, frame.id);
      return;
    }
    conn.inFlight++;
    let reply: Promise<void> | void;
    try {
      reply = this.dispatch(conn, frame);
    } catch (err) {
      reply = Promise.reject(err);
    }
    Promise.resolve(reply).then(
      () => {
        conn.inFlight--;
      },
      (err: unknown) => {
        conn.inFlight--;
        const e = toTributaryError(err);
        if (e.code === 'INTERNAL') this.log.error({ err, frame: frame.t }, 'request failed');
        conn.sendError(e, frame.id);
      },
    );
  }

  private dispatch(conn: Connection, f: Exclude<ClientFrame, { t: 'credit' }>): Promise<void> | void {
    switch (f.t) {
      case 'produce':
        return this.produce(conn, f);
      case 'subscribe':
        return this.subscribe(conn, f);
      case 'unsubscribe': {
        if (!conn.subscriptions.has(f.sub)) throw new TributaryError('UNKNOWN_SUBSCRIPTION', `no subscription ${f.sub} on this connection`);
        this.endSubscription(conn, f.sub);
        conn.send({ t: 'ok', id: f.id, sub: f.sub });
        return;
      }
      case 'hello':
        return this.hello(conn, f.id, f.v, f.token);
      case 'auth':
        return principalFor({ token: f.token }).then((p) => {
          if (p.subject !== conn.principal.subject) throw new TributaryError('SUBJECT_CHANGED');
          conn.principal = p;
          conn.send({ t: 'ok', id: f.id, expiresAtMs: p.expiresAtMs });
        });
      case 'metadata': {
        authorize(conn.principal, 'consume', f.topic);
        const d = this.deps.broker.topics.describe(f.topic);
        conn.send({ t: 'ok', id: f.id, topic: d.name, partitions: d.partitions, config: d.config, offsets: d.offsets });
        return;
      }
      case 'ping':
        conn.send({ t: 'ok', id: f.id, now: Date.now() });
        return;
      case 'commit':
        throw new TributaryError('BAD_REQUEST', 'consumer groups are not available on this hub yet');
    }
  }

  private async hello(conn: Connection, id: number, version: number, token: string | undefined): Promise<void> {
    if (version !== PROTOCOL_VERSION) {
      const err = new TributaryError('UNSUPPORTED_VERSION', `this hub speaks protocol version ${PROTOCOL_VERSION}, not ${version}`, { supported: [PROTOCOL_VERSION] });
      conn.sendError(err, id);
      conn.closeWith(err);
      return;
    }
    conn.principal = await principalFor({ token: token ?? null });
    conn.send({ t: 'ok', id, v: PROTOCOL_VERSION, subject: conn.principal.subject, maxFrameBytes: this.cfg.maxFrameBytes, expiresAtMs: conn.principal.expiresAtMs });
  }

  private async produce(conn: Connection, f: ProduceFrame): Promise<void> {
    authorize(conn.principal, 'produce', f.topic);
    // broker.produce encodes and hands the batches to storage before its first await: the frame's byte views stay valid.
    const res = await this.deps.broker.produce(f);
    if (res.duplicate) conn.send({ t: 'ack', id: f.id, parts: res.parts, dup: true });
    else conn.send({ t: 'ack', id: f.id, parts: res.parts });
  }

  private async subscribe(conn: Connection, f: SubscribeFrame): Promise<void> {
    authorize(conn.principal, 'consume', f.topic);
    if (f.group !== undefined) throw new TributaryError('BAD_REQUEST', 'consumer groups are not available on this hub yet');
    if (conn.subscriptions.has(f.id)) throw new TributaryError('CONFLICT', `subscription ${f.id} is already active on this connection; use a fresh id`);
    const refused = this.deps.limits.admitSubscription(conn);
    if (refused) throw refused;
    conn.pendingSubscribes++;
    let created;
    try {
      created = await this.deps.broker.subscriptions.subscribe(f, conn);
    } finally {
      conn.pendingSubscribes--;
    }
    const { subscription, started } = created;
    if (conn.closed) {
      this.deps.broker.subscriptions.remove(subscription);
      return;
    }
    conn.subscriptions.set(f.id, subscription);
    this.deps.metrics.subscriptions.inc();
    conn.send({ t: 'ok', id: f.id, sub: f.id, partitions: started });
    subscription.start();
  }
}
