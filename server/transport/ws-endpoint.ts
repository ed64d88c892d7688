/**
 * The WebSocket endpoint /v1/ws: upgrade (origin, token, limits), frame
 * decode (protocol's decoder, once, at the edge), authentication (ws-auth.ts),
 * authorization and quotas on every frame, and dispatch to the broker. Every
 * request frame gets exactly one reply: ok, ack or error with its id; a
 * refused request leaves the connection usable.
 */
import { TributaryError, errorAnswer, toTributaryError } from '../../protocol/errors.ts';
import { decodeClientFrame } from '../../protocol/frame-decoder.ts';
import { nativeCrc32c } from '../storage/native-crc.ts';
import { PROTOCOL_VERSION, type ClientFrame, type CommitFrame, type ProduceBatchesFrame, type ProduceFrame, type SubscribeFrame } from '../../protocol/frames.ts';
import { isInternalTopic } from '../broker/group-offsets.ts';
import type { Principal } from '../auth/index.ts';
import type { HubConfig } from '../config.ts';
import type { Logger } from '../logger.ts';
import { Connection, type ConnectionEvents } from './connection.ts';
import { queryOf } from './http-io.ts';
import { authorize } from './authorize.ts';
import type { TransportDeps } from './transport-deps.ts';
import type { Uws } from './uws.ts';
import { WsAuth } from './ws-auth.ts';
import type { HttpRequest, HttpResponse, us_socket_context_t, WebSocket, WebSocketBehavior } from 'uWebSockets.js';

type UserData = { conn: Connection; fromUpgrade: Principal | TributaryError | null };

/** Frames above maxFrameBytes but within this slack get a 4413 with a reason; beyond it uWS drops the TCP connection without a close frame (the client sees 1006). */
const FRAME_SLACK_BYTES = 64 * 1024;

export class WsEndpoint {
  readonly connections = new Set<Connection>();
  private readonly events: ConnectionEvents;
  private readonly cfg: HubConfig;
  private readonly log: Logger;
  private readonly auth: WsAuth;

  constructor(private readonly deps: TransportDeps) {
    this.cfg = deps.config;
    this.log = deps.log;
    this.auth = new WsAuth(deps);
    const m = deps.metrics;
    this.events = {
      paused: () => m.pausedConnections.inc(),
      resumed: () => m.pausedConnections.dec(),
      slowConsumer: (c) => {
        m.slowConsumerCloses.inc();
        this.log.warn({ remote: c.remote, subject: c.principal.subject }, 'closing slow consumer');
      },
      subscriptionEnded: (c, subId) => this.endSubscription(c, subId, 'leave'),
      error: (e) => m.countError(e.code),
    };
  }

  /**
   * An upgrade request: refused with an HTTP status while not ready, past the
   * connection rate or on a bad origin or subprotocol; otherwise upgraded once
   * the token (if any) is verified — a connection over the limit is upgraded
   * too and closed with 4429, a reason a browser can read.
   */
  private onUpgrade(res: HttpResponse, req: HttpRequest, context: us_socket_context_t): void {
    const key = req.getHeader('sec-websocket-key');
    const protocols = req.getHeader('sec-websocket-protocol');
    const extensions = req.getHeader('sec-websocket-extensions');
    const origin = req.getHeader('origin');
    const host = req.getHeader('host');
    const query = queryOf(req);
    const remote = Buffer.from(res.getRemoteAddressAsText()).toString();
    let aborted = false;
    res.onAborted(() => {
      aborted = true;
    });
    const refuse = (err: TributaryError): void => {
      this.deps.metrics.countError(err.code);
      if (aborted) return;
      res.cork(() => {
        const { status, headers, body } = errorAnswer(err);
        res.writeStatus(`${status} ${err.code}`).writeHeader('content-type', 'application/json');
        for (const [name, value] of Object.entries(headers)) res.writeHeader(name, value);
        res.end(JSON.stringify(body), true);
      });
    };
    if (!this.deps.state.ready) return refuse(new TributaryError(this.deps.state.shuttingDown ? 'SHUTTING_DOWN' : 'NOT_READY'));
    const tooFast = this.deps.limits.admitConnection(remote);
    if (tooFast) return refuse(tooFast);
    let checked: ReturnType<WsAuth['checkUpgrade']>;
    try {
      checked = this.auth.checkUpgrade(query, origin, protocols, host);
    } catch (err) {
      return refuse(toTributaryError(err));
    }
    // Counted from here, before the token is checked, so that connections that never authenticate are bounded too.
    // Over the limit: upgrade anyway and close with 4429 and a reason, which a browser can read (an HTTP status it cannot).
    const refusal = this.deps.limits.openConnection();
    const verified = 'failure' in checked ? Promise.resolve(checked.failure) : this.auth.verifyUpgradeToken(refusal ? null : checked.token);
    verified.then((fromUpgrade) => {
      if (aborted) {
        if (!refusal) this.deps.limits.closeConnection(null);
        return;
      }
      const { principal, authenticated } = this.auth.initialPrincipal();
      const conn = new Connection(principal, authenticated, this.deps.limits.quota(), remote, this.cfg, this.events);
      conn.refusal = refusal;
      res.cork(() => res.upgrade<UserData>({ conn, fromUpgrade }, key, checked.protocol, extensions, context));
    });
  }

  behavior(uws: Uws): WebSocketBehavior<UserData> {
    return {
      maxPayloadLength: this.cfg.maxFrameBytes + FRAME_SLACK_BYTES,
      // The idle timeout is the hub's own (sweep): it closes with 4408 and a reason, which uWS's would not.
      idleTimeout: 0,
      sendPingsAutomatically: false,
      // Above our own hard cap so that uWS never drops a frame before we close the connection ourselves.
      maxBackpressure: this.cfg.maxBufferedBytesPerConnection + this.cfg.maxFrameBytes + FRAME_SLACK_BYTES,
      closeOnBackpressureLimit: 0,
      compression: uws.DISABLED,
      upgrade: (res, req, context) => this.onUpgrade(res, req, context),
      open: (ws) => {
        const { conn, fromUpgrade } = ws.getUserData();
        conn.ws = ws;
        if (conn.refusal) {
          conn.closeWith(conn.refusal);
          return;
        }
        this.connections.add(conn);
        this.deps.metrics.connections.inc();
        this.deps.metrics.connectionsTotal.inc();
        this.auth.opened(conn, fromUpgrade);
      },
      message: (ws, message) => this.onMessage(ws, message),
      pong: (ws) => {
        const conn = ws.getUserData().conn;
        conn.lastReceivedMs = Date.now();
        conn.pinged = false;
      },
      drain: (ws) => ws.getUserData().conn.onDrain(),
      close: (ws) => {
        const conn = ws.getUserData().conn;
        if (conn.pausedSinceMs !== 0) this.deps.metrics.pausedConnections.dec();
        // Group members only detach: they keep their partitions until their session times out, and may resume.
        for (const subId of [...conn.subscriptions.keys()]) this.endSubscription(conn, subId, 'detach');
        conn.markClosed();
        // Refused connections were never counted; the others exactly once, under the subject they were attached to.
        if (conn.refusal === null && this.connections.delete(conn)) {
          this.deps.limits.closeConnection(conn.countedSubject);
          this.deps.metrics.connections.dec();
        }
      },
    };
  }

  /**
   * Called by the server's sweep timer: nudges paused connections whose send
   * backlog has not moved (Connection.nudgeIfStalled), closes those paused past the
   * slow-consumer timeout, pings connections silent for half the idle
   * timeout, and closes those silent for all of it (4408 IDLE_TIMEOUT).
   */
  sweep(nowMs: number): void {
    const idleMs = this.deps.limits.settings.idleTimeoutMs;
    for (const c of this.connections) {
      c.nudgeIfStalled();
      if (c.pausedSinceMs !== 0 && nowMs - c.pausedSinceMs > this.cfg.slowConsumerTimeoutMs) {
        this.events.slowConsumer(c);
        c.closeWith(new TributaryError('SLOW_CONSUMER', `paused by backpressure for more than ${this.cfg.slowConsumerTimeoutMs} ms`));
        continue;
      }
      const silentMs = nowMs - c.lastReceivedMs;
      if (silentMs >= idleMs) c.closeWith(new TributaryError('IDLE_TIMEOUT', `nothing received for ${idleMs} ms (not even a pong)`));
      else if (silentMs >= idleMs / 2 && !c.pinged && c.ws) {
        c.pinged = true;
        c.ws.ping();
      }
    }
  }

  /** Shutdown: close every connection with 1001 (going away). */
  closeAll(): void {
    for (const c of [...this.connections]) c.closeNormally(1001, 'SHUTTING_DOWN: hub is shutting down');
  }

  private endSubscription(conn: Connection, subId: number, member: 'leave' | 'detach'): void {
    const s = conn.subscriptions.get(subId);
    if (!s) return;
    conn.subscriptions.delete(subId);
    conn.quota.removeSubscription();
    const memberId = conn.members.get(subId);
    if (memberId !== undefined) {
      conn.members.delete(subId);
      if (member === 'leave') this.deps.broker.groups.leave(memberId, s);
      else this.deps.broker.groups.detach(memberId, s);
    }
    this.deps.broker.subscriptions.remove(s);
    this.deps.metrics.subscriptions.dec();
  }

  /** The group member behind subscription `subId` of this connection, or UNKNOWN_SUBSCRIPTION. */
  private memberOf(conn: Connection, subId: number): string {
    const m = conn.members.get(subId);
    if (m === undefined) throw new TributaryError('UNKNOWN_SUBSCRIPTION', `no group subscription ${subId} on this connection`);
    return m;
  }

  private onMessage(ws: WebSocket<UserData>, message: ArrayBuffer): void {
    const conn = ws.getUserData().conn;
    if (conn.closed) return;
    conn.lastReceivedMs = Date.now();
    conn.pinged = false;
    const bytes = new Uint8Array(message);
    const decoded = decodeClientFrame(bytes, this.cfg.maxFrameBytes, Date.now(), nativeCrc32c);
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
    const unauthenticated = this.auth.gate(conn, frame.t);
    if (unauthenticated) {
      conn.sendError(unauthenticated, 'id' in frame ? frame.id : undefined);
      return;
    }
    if (this.deps.state.shuttingDown && frame.t !== 'credit') {
      conn.sendError(new TributaryError('SHUTTING_DOWN'), 'id' in frame ? frame.id : undefined);
      return;
    }
    if (frame.t === 'credit') {
      const subscription = conn.subscriptions.get(frame.sub);
      if (subscription) {
        subscription.addCredit(frame.bytes);
        const member = conn.members.get(frame.sub);
        if (member !== undefined) this.deps.broker.groups.touch(member);
      } else conn.error(frame.sub, new TributaryError('UNKNOWN_SUBSCRIPTION', `no subscription ${frame.sub} on this connection`));
      return;
    }
    const refused = this.deps.limits.beginRequest(conn.quota);
    if (refused) {
      conn.sendError(refused, frame.id);
      return;
    }
    let reply: Promise<void> | void;
    try {
      reply = this.dispatch(conn, frame, message.byteLength);
    } catch (err) {
      reply = Promise.reject(err);
    }
    Promise.resolve(reply).then(
      () => conn.quota.endRequest(),
      (err: unknown) => {
        conn.quota.endRequest();
        const e = toTributaryError(err);
        if (e.code === 'INTERNAL') this.log.error({ err, frame: frame.t }, 'request failed');
        conn.sendError(e, frame.id);
      },
    );
  }

  private dispatch(conn: Connection, f: Exclude<ClientFrame, { t: 'credit' }>, frameBytes: number): Promise<void> | void {
    switch (f.t) {
      case 'produce':
        return this.produce(conn, f, frameBytes);
      case 'subscribe':
        return this.subscribe(conn, f);
      case 'unsubscribe': {
        if (!conn.subscriptions.has(f.sub)) throw new TributaryError('UNKNOWN_SUBSCRIPTION', `no subscription ${f.sub} on this connection`);
        this.endSubscription(conn, f.sub, 'leave');
        conn.send({ t: 'ok', id: f.id, sub: f.sub });
        return;
      }
      case 'hello':
        if (f.client !== undefined) conn.clientName = f.client;
        return this.hello(conn, f.id, f.v, f.token);
      case 'auth':
        return this.auth.refresh(conn, f.token).then((p) => {
          conn.send({ t: 'ok', id: f.id, expiresAtMs: p.expiresAtMs });
        });
      case 'metadata': {
        // A producer that picks partitions itself (the batch form) needs the count of a topic it may only produce to;
        // with `create`, it gets the topic created as its first produce would have created it (Kafka's metadata does too).
        const mayProduce = conn.principal.canProduce(f.topic);
        if (!mayProduce) authorize(conn.principal, 'consume', f.topic);
        const describe = (): void => {
          const d = this.deps.broker.topics.describe(f.topic);
          conn.send({ t: 'ok', id: f.id, topic: d.name, partitions: d.partitions, config: d.config, offsets: d.offsets });
        };
        if (f.create === true && mayProduce && !this.deps.broker.topics.get(f.topic)) return this.deps.broker.topics.ensure(f.topic).then(describe);
        describe();
        return;
      }
      case 'ping':
        conn.send({ t: 'ok', id: f.id, now: Date.now() });
        return;
      case 'commit':
        return this.commit(conn, f);
      case 'heartbeat': {
        const { generation } = this.deps.broker.groups.heartbeat(this.memberOf(conn, f.sub));
        conn.send({ t: 'ok', id: f.id, generation });
        return;
      }
      case 'confirm':
        this.deps.broker.groups.confirm(this.memberOf(conn, f.sub), f.generation);
        conn.send({ t: 'ok', id: f.id });
        return;
    }
  }

  private async hello(conn: Connection, id: number, version: number, token: string | undefined): Promise<void> {
    if (version !== PROTOCOL_VERSION) {
      const err = new TributaryError('UNSUPPORTED_VERSION', `this hub speaks protocol version ${PROTOCOL_VERSION}, not ${version}`, { supported: [PROTOCOL_VERSION] });
      conn.failAndClose(err, id);
      return;
    }
    const principal = await this.auth.hello(conn, id, token);
    if (principal === null) return; // refused and closed
    conn.send({ t: 'ok', id, v: PROTOCOL_VERSION, subject: principal.subject, maxFrameBytes: this.cfg.maxFrameBytes, expiresAtMs: principal.expiresAtMs });
  }

  private async commit(conn: Connection, f: CommitFrame): Promise<void> {
    authorize(conn.principal, 'join', f.group);
    authorize(conn.principal, 'consume', f.topic);
    await this.deps.broker.groups.commit(f.group, f.topic, f.offsets, f.member, f.generation);
    conn.send({ t: 'ok', id: f.id });
  }

  private async produce(conn: Connection, f: ProduceFrame | ProduceBatchesFrame, frameBytes: number): Promise<void> {
    authorize(conn.principal, 'produce', f.topic);
    if (isInternalTopic(f.topic)) throw new TributaryError('FORBIDDEN', `${f.topic} is an internal topic: clients cannot produce to it`, { resource: f.topic });
    // The frame's size stands for the records' bytes: no walk over the records on the hot path.
    const limited = this.deps.limits.admitProduce(conn.quota, conn.principal, frameBytes, f.batches ? recordCountOf(f) : f.records.length);
    if (limited) throw limited;
    // broker.produce encodes (or copies) the batches before its first await: the frame's byte views are not kept.
    const res = await this.deps.broker.produce(f);
    if (res.duplicate) conn.send({ t: 'ack', id: f.id, parts: res.parts, dup: true });
    else conn.send({ t: 'ack', id: f.id, parts: res.parts });
  }

  private async subscribe(conn: Connection, f: SubscribeFrame): Promise<void> {
    authorize(conn.principal, 'consume', f.topic);
    if (f.group !== undefined) authorize(conn.principal, 'join', f.group);
    if (conn.subscriptions.has(f.id)) throw new TributaryError('CONFLICT', `subscription ${f.id} is already active on this connection; use a fresh id`);
    const refused = this.deps.limits.addSubscription(conn.quota);
    if (refused) throw refused;
    // The slot is held from here: released by endSubscription, or below when the subscribe fails.
    if (f.group !== undefined) return this.joinGroup(conn, f, f.group);
    let created;
    try {
      created = await this.deps.broker.subscriptions.subscribe(f, conn);
    } catch (err) {
      conn.quota.removeSubscription();
      throw err;
    }
    const { subscription, started } = created;
    if (conn.closed) {
      conn.quota.removeSubscription();
      this.deps.broker.subscriptions.remove(subscription);
      return;
    }
    conn.subscriptions.set(f.id, subscription);
    this.deps.metrics.subscriptions.inc();
    conn.send({ t: 'ok', id: f.id, sub: f.id, partitions: started });
    subscription.start();
  }

  private async joinGroup(conn: Connection, f: SubscribeFrame, group: string): Promise<void> {
    const groups = this.deps.broker.groups;
    let joined;
    try {
      const refused = groupFieldsOf(f);
      if (refused) throw new TributaryError('BAD_REQUEST', refused);
      joined = await groups.join({ group, topic: f.topic, from: f.from, subId: f.id, credit: f.credit, member: f.member, client: conn.clientName || conn.principal.subject || conn.remote }, conn);
    } catch (err) {
      conn.quota.removeSubscription();
      throw err;
    }
    if (conn.closed) {
      conn.quota.removeSubscription();
      groups.detach(joined.member, joined.subscription);
      return;
    }
    conn.subscriptions.set(f.id, joined.subscription);
    conn.members.set(f.id, joined.member);
    this.deps.metrics.subscriptions.inc();
    const s = groups.settings;
    conn.send({ t: 'ok', id: f.id, sub: f.id, member: joined.member, generation: joined.generation, sessionTimeoutMs: s.sessionTimeoutMs, heartbeatIntervalMs: s.heartbeatIntervalMs });
    groups.start(joined.member);
  }
}

/** Reads a subscribe with `group` as a member's join (or resume). */
function groupFieldsOf(f: SubscribeFrame): string | null {
  if (f.partitions !== undefined) return 'a group member cannot choose partitions: the group assigns them';
  if (f.positions !== undefined) return "a group member starts at the group's committed offsets, not positions";
  return null;
}

function recordCountOf(f: ProduceBatchesFrame): number {
  let n = 0;
  for (const b of f.batches) n += b.recordCount;
  return n;
}
