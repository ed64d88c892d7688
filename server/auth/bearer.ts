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
import { TributaryError } from '../../protocol/errors.ts';
import { LIMITS } from '../../protocol/limits.ts';
import { WS_SUBPROTOCOL } from '../../protocol/frames.ts';

/** The prefix of the Sec-WebSocket-Protocol entry that carries a token. */
export const BEARER_PROTOCOL_PREFIX = 'bearer.';

/** RFC 6750 §2.1 b64token: the characters a bearer token may hold. */
const B64TOKEN_RE = /^[A-Za-z0-9\-._~+/]+=*$/;

function checkToken(token: string, where: string): string {
  if (token.length > LIMITS.maxTokenBytes) throw new TributaryError('TOKEN_INVALID', `token in ${where} is longer than ${LIMITS.maxTokenBytes} bytes`);
  if (!B64TOKEN_RE.test(token)) throw new TributaryError('TOKEN_INVALID', `token in ${where} has characters a bearer token cannot hold`);
  return token;
}

/**
 * The token in an `Authorization` header. Null when there is no header;
 * TOKEN_INVALID when there is one but it is not `Bearer <token>`.
 */
export function bearerFromAuthorization(header: string | null | undefined): string | null {
  if (header === undefined || header === null || header === '') return null;
  if (header.length > LIMITS.maxTokenBytes + 64) throw new TributaryError('TOKEN_INVALID', `Authorization header is longer than ${LIMITS.maxTokenBytes} bytes`);
  const m = /^([A-Za-z]+) +(\S+) *$/.exec(header);
  if (!m) throw new TributaryError('TOKEN_INVALID', 'Authorization header must be "Bearer <token>"');
  // RFC 7235 §2.1: the scheme is case-insensitive.
  if (m[1].toLowerCase() !== 'bearer') throw new TributaryError('TOKEN_INVALID', `Authorization scheme must be Bearer, not ${JSON.stringify(m[1].slice(0, 20))}`);
  return checkToken(m[2], 'the Authorization header');
}

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
      token = checkToken(entry.slice(BEARER_PROTOCOL_PREFIX.length), 'Sec-WebSocket-Protocol');
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
