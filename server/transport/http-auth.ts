/**
 * What every HTTP request goes through before its route: no token in the
 * URL (400), the Origin allow-list with CORS answers from the same list
 * (403 ORIGIN_FORBIDDEN; preflights answered 204), and the principal from
 * `Authorization: Bearer` (401 when missing or invalid with auth on).
 * Permissions are checked by each route (403 FORBIDDEN).
 */
import { TributaryError } from '../../protocol/errors.ts';
import { bearerFromAuthorization, checkNoTokenInUrl, isPreflight, type Principal } from '../auth/index.ts';
import type { Exchange } from './http-io.ts';
import type { TransportDeps } from './transport-deps.ts';

export class HttpGuard {
  constructor(private readonly deps: TransportDeps) {}

  /**
   * Checks shared by every request, open routes included: throws BAD_REQUEST
   * for a token in the URL and ORIGIN_FORBIDDEN for a disallowed Origin;
   * otherwise sets the CORS headers every answer carries.
   */
  admit(x: Exchange): void {
    if (x.framingError) throw x.framingError;
    const cors = this.deps.origins.corsHeaders(x.origin, x.host);
    if (cors === null) throw this.deps.origins.check(x.origin, x.host) ?? new TributaryError('ORIGIN_FORBIDDEN');
    x.extraHeaders = cors;
    const inUrl = checkNoTokenInUrl(x.rawQuery);
    if (inUrl) throw inUrl;
  }

  /**
   * Answers a CORS preflight (204 with the route's methods and the allowed
   * headers); false when `x` is not one.
   */
  preflight(x: Exchange, methods: readonly string[]): boolean {
    if (x.framingError) throw x.framingError;
    if (!isPreflight(x.method, { origin: x.origin, accessControlRequestMethod: x.accessControlRequestMethod })) return false;
    const headers = this.deps.origins.preflightHeaders(x.origin, x.host, methods);
    if (headers === null) throw this.deps.origins.check(x.origin, x.host) ?? new TributaryError('ORIGIN_FORBIDDEN');
    x.extraHeaders = {};
    x.sendEmpty(204, headers);
    return true;
  }

  /** The request's principal: anonymous with auth off, else from its bearer token. */
  principal(x: Exchange): Promise<Principal> {
    // With auth off a token is ignored, as on WebSocket: there is nothing to check it against.
    if (!this.deps.authenticator.required) return this.deps.authenticator.authenticate(null);
    let token: string | null;
    try {
      token = bearerFromAuthorization(x.authorization);
    } catch (err) {
      return Promise.reject(err);
    }
    return this.deps.authenticator.authenticate(token);
  }
}
