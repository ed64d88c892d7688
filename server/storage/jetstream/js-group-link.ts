/**
 * Hubs over one JetStream cluster elect a group coordinator and talk to it
 * (docs/scale-out.md, "Consumer groups across hubs").
 *
 * The election is a lease in a key-value bucket whose entries expire
 * (max_age): the hub that creates the key `groups` (create = compare-and-set
 * on "no such key") is the coordinator while it renews the entry with
 * update(key, revision), another compare-and-set. A coordinator that dies
 * stops renewing; its entry expires within LEASE_TTL_MS and the next hub to
 * try creates the key. A hub that finds the key held by another learns
 * the coordinator from its value.
 *
 * Messages are core NATS: to the coordinator on `<prefix>.coord.<hubId>`
 * (requests with a reply subject, or plain messages), to one hub on
 * `<prefix>.hub.<hubId>`. One connection publishes in order and one
 * subscription delivers in order, so a hub's messages reach the coordinator
 * in the order it sent them.
 */
import type { KV, NatsConnection, Subscription } from 'nats';
import { TributaryError, type ErrorCode } from '../../../protocol/errors.ts';
import type { GroupLink } from '../log-store.ts';

const LEASE_BUCKET = 'tributary_leases';
const LEASE_KEY = 'groups';
/** A coordinator that stopped renewing loses the lease within this. */
const LEASE_TTL_MS = 5000;
/** Renewal (by the holder) and polling (by the others). */
const LEASE_TICK_MS = 1000;
/** A request to the coordinator not answered within this fails, retriable. */
const REQUEST_TIMEOUT_MS = 10_000;
const SUBJECT_PREFIX = 'tributary.groups';

const enc = new TextEncoder();
const dec = new TextDecoder();

type Handlers = Parameters<GroupLink['serve']>[0];

export class JsGroupLink implements GroupLink {
  private kv!: KV;
  private current: string | null = null;
  private revision = 0;
  private readonly listeners = new Set<(leader: string | null) => void>();
  private handlers: Handlers | null = null;
  private subs: Subscription[] = [];
  private timer: NodeJS.Timeout | null = null;
  private ticking = false;
  private closed = false;

  constructor(
    private readonly nc: NatsConnection,
    readonly hubId: string,
    private readonly log: { warn(obj: object, msg?: string): void },
  ) {}

  /** Opens the lease bucket and takes part in the first election before the hub serves. */
  async open(replicas: number): Promise<void> {
    this.kv = await this.nc.jetstream().views.kv(LEASE_BUCKET, { history: 1, ttl: LEASE_TTL_MS, replicas });
    this.subs.push(this.listen(`${SUBJECT_PREFIX}.coord.${this.hubId}`, true), this.listen(`${SUBJECT_PREFIX}.hub.${this.hubId}`, false));
    await this.tick();
    this.timer = setInterval(() => void this.tick(), LEASE_TICK_MS);
    this.timer.unref();
  }

  leader(): string | null {
    return this.current;
  }

  onLeaderChange(listener: (leader: string | null) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  async request(body: object): Promise<unknown> {
    const to = this.current;
    if (!to) throw new TributaryError('NOT_READY', 'no group coordinator elected yet; retry');
    let reply;
    try {
      reply = await this.nc.request(`${SUBJECT_PREFIX}.coord.${to}`, enc.encode(JSON.stringify(body)), { timeout: REQUEST_TIMEOUT_MS });
    } catch (err) {
      throw new TributaryError('NOT_READY', `group coordinator ${to} did not answer (${String(err)}); retry`);
    }
    const r = JSON.parse(dec.decode(reply.data)) as { ok?: unknown; err?: { code: ErrorCode; message: string; details?: Record<string, unknown> } };
    if (r.err) throw new TributaryError(r.err.code, r.err.message, r.err.details);
    return r.ok;
  }

  send(body: object): void {
    if (this.current) this.nc.publish(`${SUBJECT_PREFIX}.coord.${this.current}`, enc.encode(JSON.stringify(body)));
  }

  tell(hubId: string, body: object): void {
    this.nc.publish(`${SUBJECT_PREFIX}.hub.${hubId}`, enc.encode(JSON.stringify(body)));
  }

  serve(handlers: Handlers): void {
    this.handlers = handlers;
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    for (const s of this.subs) s.unsubscribe();
    // Hand the lease on at once rather than after its expiry.
    if (this.current === this.hubId) await this.kv.delete(LEASE_KEY).catch(() => undefined);
  }

  private listen(subject: string, coordinator: boolean): Subscription {
    return this.nc.subscribe(subject, {
      callback: (err, m) => {
        if (err || !this.handlers) return;
        let body: unknown;
        try {
          body = JSON.parse(dec.decode(m.data));
        } catch {
          return;
        }
        if (!coordinator) return this.handlers.told(body);
        if (!m.reply) return this.handlers.message(body);
        const answer = (r: object): void => void m.respond(enc.encode(JSON.stringify(r)));
        this.handlers.request(body).then(
          (ok) => answer({ ok: ok ?? null }),
          (e: unknown) => {
            const te = e instanceof TributaryError ? e : new TributaryError('INTERNAL', String(e));
            answer({ err: { code: te.code, message: te.message, details: te.details } });
          },
        );
      },
    });
  }

  /** Renews the lease (holder) or looks for it and takes it when free (others). */
  private async tick(): Promise<void> {
    if (this.ticking || this.closed) return;
    this.ticking = true;
    try {
      if (this.current === this.hubId) {
        try {
          this.revision = await this.kv.update(LEASE_KEY, enc.encode(this.hubId), this.revision);
          return;
        } catch (err) {
          this.log.warn({ err: String(err) }, 'group coordinator lease renewal failed');
        }
      }
      const e = await this.kv.get(LEASE_KEY);
      if (e && e.operation === 'PUT' && e.value.length > 0) {
        const holder = dec.decode(e.value);
        if (holder === this.hubId) this.revision = e.revision;
        return this.set(holder);
      }
      try {
        this.revision = await this.kv.create(LEASE_KEY, enc.encode(this.hubId));
        this.set(this.hubId);
      } catch {
        // Another hub created it first (hubs starting together): read who now, not a tick later, so that a
        // member joining through this hub meanwhile is not refused for want of a coordinator.
        const won = await this.kv.get(LEASE_KEY);
        this.set(won && won.operation === 'PUT' && won.value.length > 0 ? dec.decode(won.value) : null);
      }
    } catch (err) {
      this.log.warn({ err: String(err) }, 'group coordinator lease check failed');
    } finally {
      this.ticking = false;
    }
  }

  private set(leader: string | null): void {
    if (leader === this.current) return;
    this.current = leader;
    for (const l of this.listeners) l(leader);
  }
}
