/**
 * The one question the transport asks: "who is this, given this token (or
 * none)?" — answered the same way whether auth is on or off, so the
 * transport has no `if (auth enabled)` of its own.
 */
import { TributaryError } from '../../protocol/errors.ts';
import type { AuthConfig } from './auth-config.ts';
import { anonymousPrincipal, type Principal } from './principal.ts';
import { TokenVerifier, type TokenVerifierOptions } from './token-verifier.ts';

export interface Authenticator {
  /** True when tokens are checked; false when every connection is anonymous. */
  readonly required: boolean;
  /** The principal for a token; with auth on, a missing token is UNAUTHENTICATED. */
  authenticate(token: string | null | undefined): Promise<Principal>;
  /** In-band refresh (`auth` frame): a valid token for the same subject. */
  refresh(current: Principal, token: string): Promise<Principal>;
}

export function createAuthenticator(config: AuthConfig, opts: TokenVerifierOptions = {}): Authenticator {
  if (config.mode === 'none') {
    return {
      required: false,
      // With auth off a token is ignored rather than checked: there is nothing to check it against.
      authenticate: async () => anonymousPrincipal(),
      refresh: async (current) => current,
    };
  }
  const verifier = new TokenVerifier(config, opts);
  return {
    required: true,
    authenticate: async (token) => {
      if (token === null || token === undefined || token === '') {
        throw new TributaryError(
          'UNAUTHENTICATED',
          'authentication required: send a token (Authorization: Bearer on HTTP; the hello frame or Sec-WebSocket-Protocol "tributary.v1, bearer.<JWT>" on WebSocket)',
        );
      }
      return verifier.verify(token);
    },
    refresh: (current, token) => verifier.refresh(current, token),
  };
}
