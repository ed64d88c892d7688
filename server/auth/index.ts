/**
 * server/auth: who may connect, as whom, and to do what (how much is
 * server/limits). Pure building blocks — no sockets, no uWebSockets.js; the
 * transport calls them at the upgrade, on hello/auth frames, on every
 * request and on every HTTP route.
 */
export { ASYMMETRIC_ALGORITHMS, HMAC_ALGORITHMS } from '../../protocol/bearer.ts';
export { MIN_SECRET_BYTES, authConfigWarnings, resolveAuthConfig, type AuthConfig, type AuthConfigInput, type AuthMode } from './auth-config.ts';
export {
  MAX_PATTERNS_PER_LIST,
  MAX_PATTERN_LENGTH,
  MAX_SUBJECT_LENGTH,
  MAX_TIMER_DELAY_MS,
  PatternSet,
  anonymousPrincipal,
  expiryDelayMs,
  permissionsFromClaims,
  principalFromClaims,
  type Permissions,
  type Principal,
} from './principal.ts';
export { ExpirySchedule } from './expiry-schedule.ts';
export { TokenVerifier, type TokenVerifierOptions } from './token-verifier.ts';
export { createAuthenticator, type Authenticator } from './authenticator.ts';
export { OriginPolicy, isPreflight, type CorsOptions } from './origin.ts';
export { BEARER_PROTOCOL_PREFIX, authFromWebSocketProtocol, bearerFromAuthorization, checkNoTokenInUrl, urlCarriesToken, type WebSocketProtocolAuth } from './bearer.ts';
