/**
 * server/auth: who may connect, as whom, to do what, and how much. Pure
 * building blocks — no sockets, no uWebSockets.js; the transport calls them
 * at the upgrade, on hello/auth frames, on every request and on every HTTP route.
 */
export {
  AUTH_DEFAULTS,
  ASYMMETRIC_ALGORITHMS,
  AuthConfigError,
  DEFAULT_LIMITS,
  HMAC_ALGORITHMS,
  MIN_SECRET_BYTES,
  authConfigWarnings,
  resolveAuthConfig,
  type AuthConfig,
  type AuthConfigInput,
  type AuthLimits,
  type AuthMode,
} from './auth-config.ts';
export { AUTH_SETTINGS, authInputFromSources, flagProperty, type AuthSetting, type SettingSources } from './auth-settings.ts';
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
export { TokenVerifier, type TokenVerifierOptions } from './token-verifier.ts';
export { createAuthenticator, type Authenticator } from './authenticator.ts';
export { TokenBucket } from './token-bucket.ts';
export { ConnectionLimits, type ConnectionLimitsConfig } from './connection-limits.ts';
export { OriginPolicy, isPreflight, type CorsOptions } from './origin.ts';
export {
  BEARER_PROTOCOL_PREFIX,
  authFromWebSocketProtocol,
  bearerFromAuthorization,
  checkNoTokenInUrl,
  urlCarriesToken,
  type WebSocketProtocolAuth,
} from './bearer.ts';
export { ConnectionQuota, type QuotaLimits } from './connection-quota.ts';
export { SubjectQuotas, type SubjectRateLimits } from './subject-quotas.ts';
export { ConnectionRate, type ConnectionRateLimits } from './connection-rate.ts';
