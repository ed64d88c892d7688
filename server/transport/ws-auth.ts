/**
 * Authentication of a WebSocket, from upgrade to close: the checks at the
 * upgrade (no token in the URL, the Origin allow-list, a token offered as
 * `Sec-WebSocket-Protocol: tributary.v1, bearer.<JWT>`), the deadline to
 * authenticate (4408 AUTH_TIMEOUT), `hello` with a token, in-band refresh
 * with `auth`, and the close when a token expires (4401 TOKEN_EXPIRED).
 *
 * A connection is counted (ConnectionLimits) from its upgrade under no
 * subject, and moved under its token's subject once when it first
 * authenticates; it is uncounted under that same subject on close.
 */
import { TributaryError, toTributaryError } from '../../protocol/errors.ts';
import { WS_SUBPROTOCOL } from '../../protocol/frames.ts';
import { anonymousPrincipal, authFromWebSocketProtocol, checkNoTokenInUrl, expiryDelayMs, principalFromClaims, type Authenticator, type Principal } from '../auth/index.ts';
import type { Connection } from './connection.ts';
import type { TransportDeps } from './transport-deps.ts';

/** The principal of a connection that has not authenticated yet: allowed nothing (and never asked: frames are gated first). */
const UNAUTHENTICATED: Principal = principalFromClaims('(unauthenticated)', {}, null);

/** What the upgrade learned: the subprotocol to answer and the token offered beside it. */
export interface UpgradeAuth {
  protocol: string;
  token: string | null;
}

export class WsAuth {
  private readonly auth: Authenticator;

  constructor(private readonly deps: TransportDeps) {
    this.auth = deps.authenticator;
  }

  get required(): boolean {
    return this.auth.required;
  }

  /** The principal a new connection starts with, and whether it counts as authenticated. */
  initialPrincipal(): { principal: Principal; authenticated: boolean } {
    return this.auth.required ? { principal: UNAUTHENTICATED, authenticated: false } : { principal: anonymousPrincipal(), authenticated: true };
  }

  /**
   * The upgrade's checks, in order: a token in the URL (400), the Origin
   * (403 ORIGIN_FORBIDDEN), then Sec-WebSocket-Protocol. Throws the
   * TributaryError to refuse the upgrade with; a badly formed bearer entry
   * is not thrown but returned as a failed token, so that the client learns
   * it from a close reason (which a browser can read) rather than a status.
   */
  checkUpgrade(query: string, origin: string, protocols: string, host?: string): UpgradeAuth | { protocol: string; failure: TributaryError } {
    const inUrl = checkNoTokenInUrl(query);
    if (inUrl) throw inUrl;
    const badOrigin = this.deps.origins.check(origin, host);
    if (badOrigin) throw badOrigin;
    const offered = protocols.split(',').some((p) => p.trim() === WS_SUBPROTOCOL) ? WS_SUBPROTOCOL : '';
    try {
      const parsed = authFromWebSocketProtocol(protocols);
      return { protocol: parsed.protocol ?? '', token: parsed.token };
    } catch (err) {
      const e = toTributaryError(err);
      // A bearer entry without tributary.v1 cannot succeed in a browser whatever the hub does: refuse the upgrade.
      if (offered === '') throw e;
      return { protocol: offered, failure: e };
    }
  }

  /** Verify a token offered at the upgrade; the failure is kept, to close with after opening. */
  async verifyUpgradeToken(token: string | null): Promise<Principal | TributaryError | null> {
    if (token === null || !this.auth.required) return null;
    try {
      return await this.auth.authenticate(token);
    } catch (err) {
      return toTributaryError(err);
    }
  }

  /** The connection opened: adopt the upgrade's principal, close on its failure, or start the deadline to authenticate. */
  opened(conn: Connection, fromUpgrade: Principal | TributaryError | null): void {
    if (!this.auth.required) return;
    if (fromUpgrade instanceof TributaryError) {
      conn.closeWith(fromUpgrade);
      return;
    }
    if (fromUpgrade !== null) {
      const refused = this.establish(conn, fromUpgrade);
      if (refused) conn.closeWith(refused);
      return;
    }
    const timeoutMs = this.deps.config.auth.authTimeoutMs;
    conn.authTimer = setTimeout(() => {
      conn.authTimer = null;
      if (!conn.closed && !conn.authenticated) {
        conn.closeWith(new TributaryError('AUTH_TIMEOUT', `did not authenticate in time: send hello with a token within ${timeoutMs} ms`));
      }
    }, timeoutMs);
  }

  /**
   * Before authentication only `hello` is served: anything else gets
   * UNAUTHENTICATED (the connection stays until the deadline).
   */
  gate(conn: Connection, frameType: string): TributaryError | null {
    if (conn.authenticated || frameType === 'hello') return null;
    return new TributaryError('UNAUTHENTICATED', 'authenticate first: send hello with a token (or offer Sec-WebSocket-Protocol "tributary.v1, bearer.<JWT>")');
  }

  /**
   * `hello`'s token (else the connection's): on an unauthenticated
   * connection a failure closes it (4401, or 4503 when the JWKS cannot be
   * fetched); on an authenticated one a token must keep the subject.
   * Resolves with the principal to report, or null when the connection was closed.
   */
  async hello(conn: Connection, id: number, token: string | undefined): Promise<Principal | null> {
    if (!this.auth.required) return conn.principal;
    if (token === undefined && conn.authenticated) return conn.principal;
    let principal: Principal;
    try {
      principal = await this.auth.authenticate(token ?? null);
    } catch (err) {
      const e = toTributaryError(err);
      if (conn.authenticated) throw e;
      conn.failAndClose(e, id);
      return null;
    }
    if (conn.closed) return null;
    const refused = this.establish(conn, principal);
    if (refused) {
      if (conn.authenticated) throw refused;
      conn.failAndClose(refused, id);
      return null;
    }
    return conn.principal;
  }

  /** `auth`: a new token for the same subject; on failure the old principal stays until it expires. */
  async refresh(conn: Connection, token: string): Promise<Principal> {
    if (!this.auth.required) return conn.principal;
    const next = await this.auth.refresh(conn.principal, token);
    if (!conn.closed) {
      conn.principal = next;
      this.armExpiry(conn);
    }
    return next;
  }

  /** Adopt a verified principal: count the connection under its subject the first time, else insist on the same subject. */
  private establish(conn: Connection, principal: Principal): TributaryError | null {
    if (!conn.authenticated) {
      const refused = this.deps.limits.attach(principal.subject);
      if (refused) return refused;
      conn.countedSubject = principal.subject;
      conn.authenticated = true;
      if (conn.authTimer) clearTimeout(conn.authTimer);
      conn.authTimer = null;
    } else if (principal.subject !== conn.principal.subject) {
      return new TributaryError('SUBJECT_CHANGED', `this connection is authenticated as ${JSON.stringify(conn.principal.subject)}; a new token must carry the same subject`);
    }
    conn.principal = principal;
    this.armExpiry(conn);
    return null;
  }

  /** Close at the token's expiry; setTimeout caps its delay (about 24.8 days), so re-arm when it fires early. */
  private armExpiry(conn: Connection): void {
    if (conn.expiryTimer) clearTimeout(conn.expiryTimer);
    conn.expiryTimer = null;
    const delayMs = expiryDelayMs(conn.principal, Date.now());
    if (delayMs === null) return;
    conn.expiryTimer = setTimeout(() => {
      conn.expiryTimer = null;
      if (conn.closed) return;
      const expiresAtMs = conn.principal.expiresAtMs;
      if (expiresAtMs !== null && Date.now() < expiresAtMs) {
        this.armExpiry(conn);
        return;
      }
      if (expiresAtMs !== null) conn.closeWith(new TributaryError('TOKEN_EXPIRED', 'token expired; refresh in band with an auth frame'));
    }, delayMs);
  }
}
