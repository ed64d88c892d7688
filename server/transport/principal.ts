/**
 * The one place where a connection or an HTTP request gets its Principal.
 * Auth is off until server/auth is wired in (issue 6): everyone is the
 * anonymous principal that may do everything. With auth on, this function
 * becomes "ask the Authenticator with the token from the Authorization
 * header, Sec-WebSocket-Protocol or the hello frame".
 */
import { TributaryError } from '../../protocol/errors.ts';
import { anonymousPrincipal, type Principal } from '../auth/principal.ts';

export type { Principal };

export interface Credentials {
  /** Bearer token from Authorization, Sec-WebSocket-Protocol or hello, if any. */
  token?: string | null;
}

export async function principalFor(_credentials: Credentials): Promise<Principal> {
  return anonymousPrincipal();
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
