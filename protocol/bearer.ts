/**
 * Bearer tokens as the hub and the edge worker both read them: the
 * `Authorization: Bearer <token>` header (RFC 6750 §2.1, with its character
 * check) and the JWT algorithms either side may accept.
 */
import { TributaryError } from './errors.ts';
import { LIMITS } from './limits.ts';

export const HMAC_ALGORITHMS = ['HS256', 'HS384', 'HS512'] as const;
export const ASYMMETRIC_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519'] as const;

/** RFC 6750 §2.1 b64token: the characters a bearer token may hold. */
const B64TOKEN_RE = /^[A-Za-z0-9\-._~+/]+=*$/;

/** The token itself, checked for length and RFC 6750's characters; `where` names where it came from. */
export function checkBearerToken(token: string, where: string): string {
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
  return checkBearerToken(m[2], 'the Authorization header');
}
