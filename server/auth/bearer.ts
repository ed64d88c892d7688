/**
 * Where a token may come from: the `Authorization: Bearer` header (HTTP),
 * and, for browsers that cannot set headers on a WebSocket, an entry
 * `bearer.<JWT>` beside `tributary.v1` in `Sec-WebSocket-Protocol`. The hello
 * frame's `token` field is the third way and needs no parsing here.
 *
 * Never from a URL: query strings end up in access logs, proxies and browser
 * history. `urlCarriesToken` lets the transport refuse such requests loudly
 * instead of silently ignoring the token.
 */
import { bearerFromAuthorization, checkBearerToken } from '../../protocol/bearer.ts';
import { TributaryError } from '../../protocol/errors.ts';
import { LIMITS } from '../../protocol/limits.ts';
import { WS_SUBPROTOCOL } from '../../protocol/frames.ts';

export { bearerFromAuthorization };

/** The prefix of the Sec-WebSocket-Protocol entry that carries a token. */
const BEARER_PROTOCOL_PREFIX = 'bearer.';

export interface WebSocketProtocolAuth {
  /** What to answer in Sec-WebSocket-Protocol: `tributary.v1` when offered, else null (answer none). */
  protocol: typeof WS_SUBPROTOCOL | null;
  /** The token from a `bearer.<JWT>` entry, or null. */
  token: string | null;
}

/**
 * Read `Sec-WebSocket-Protocol: tributary.v1, bearer.<JWT>`. The answer is
 * only ever `tributary.v1`, never the bearer entry: echoing it would put the
 * token in the response and in whatever logs it. A bearer entry without
 * `tributary.v1` is BAD_REQUEST (a browser fails the handshake when the hub
 * answers none of what it offered, so the client could never succeed);
 * two bearer entries are TOKEN_INVALID.
 */
export function authFromWebSocketProtocol(header: string | null | undefined): WebSocketProtocolAuth {
  if (header === undefined || header === null || header === '') return { protocol: null, token: null };
  if (header.length > LIMITS.maxTokenBytes + 256) throw new TributaryError('TOKEN_INVALID', `Sec-WebSocket-Protocol is longer than ${LIMITS.maxTokenBytes} bytes`);
  let protocol: typeof WS_SUBPROTOCOL | null = null;
  let token: string | null = null;
  for (const raw of header.split(',')) {
    const entry = raw.trim();
    if (entry === WS_SUBPROTOCOL) protocol = WS_SUBPROTOCOL;
    else if (entry.startsWith(BEARER_PROTOCOL_PREFIX)) {
      if (token !== null) throw new TributaryError('TOKEN_INVALID', 'Sec-WebSocket-Protocol carries more than one bearer entry');
      token = checkBearerToken(entry.slice(BEARER_PROTOCOL_PREFIX.length), 'Sec-WebSocket-Protocol');
    }
  }
  if (token !== null && protocol === null) {
    throw new TributaryError('BAD_REQUEST', `Sec-WebSocket-Protocol carries a bearer token but does not offer ${WS_SUBPROTOCOL}`);
  }
  return { protocol, token };
}

/** Query parameters that usually carry credentials, lower-case: names are compared case-insensitively (`Token`, `ACCESS_TOKEN`). */
const TOKEN_PARAMS: ReadonlySet<string> = new Set(['token', 'access_token', 'jwt', 'auth', 'authorization', 'bearer', 'id_token']);

/** Whether a query string (with or without `?`) carries a token-looking parameter, whatever the case of its name. */
export function urlCarriesToken(query: string): boolean {
  if (!query) return false;
  const params = new URLSearchParams(query.startsWith('?') ? query.slice(1) : query);
  for (const name of params.keys()) if (TOKEN_PARAMS.has(name.toLowerCase())) return true;
  return false;
}

/** BAD_REQUEST for a request carrying a token in its URL, else null. */
export function checkNoTokenInUrl(query: string): TributaryError | null {
  if (!urlCarriesToken(query)) return null;
  return new TributaryError('BAD_REQUEST', 'tokens are not accepted in the URL (they end up in logs): use Authorization: Bearer, the hello frame or Sec-WebSocket-Protocol');
}
