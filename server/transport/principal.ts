/**
 * The one place where a connection or an HTTP request gets its Principal,
 * and the one check of what it may do. With auth off the Authenticator
 * answers the anonymous principal that may do everything; with auth on it
 * verifies the token from the Authorization header, Sec-WebSocket-Protocol
 * or the hello frame.
 */
import { TributaryError } from '../../protocol/errors.ts';
import type { Authenticator, Principal } from '../auth/index.ts';

export type { Principal };

export interface Credentials {
  /** Bearer token from Authorization, Sec-WebSocket-Protocol or hello, if any. */
  token?: string | null;
}

/** Rejects with UNAUTHENTICATED, TOKEN_INVALID, TOKEN_EXPIRED or NOT_READY (JWKS unreachable). */
export function principalFor(auth: Authenticator, credentials: Credentials): Promise<Principal> {
  return auth.authenticate(credentials.token ?? null);
}

export type Action = 'produce' | 'consume' | 'join' | 'admin';

/** Throws FORBIDDEN unless the principal may perform `action` on `name` (a topic or group). */
export function authorize(principal: Principal, action: Action, name = ''): void {
  let ok: boolean;
  switch (action) {
    case 'produce':
      ok = principal.canProduce(name);
      break;
    case 'consume':
      ok = principal.canConsume(name);
      break;
    case 'join':
      ok = principal.canJoin(name);
      break;
    case 'admin':
      ok = principal.admin;
      break;
  }
  if (!ok) {
    throw new TributaryError('FORBIDDEN', action === 'admin' ? `${principal.subject} may not administer the hub` : `${principal.subject} may not ${action} ${JSON.stringify(name)}`, {
      action,
      ...(name ? { resource: name } : {}),
    });
  }
}
