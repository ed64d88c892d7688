/**
 * The one check of what a principal may do, for WebSocket frames and HTTP
 * routes alike. The principal itself comes from the Authenticator
 * (server/auth): the anonymous one that may do everything with auth off, else
 * the verified token's claims (server/auth/principal.ts).
 */
import { TributaryError } from '../../protocol/errors.ts';
import type { Principal } from '../auth/index.ts';

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
