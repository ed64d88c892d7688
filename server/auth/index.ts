/**
 * server/auth: who may connect, as whom, and to do what (how much is
 * server/limits). Pure building blocks — no sockets, no uWebSockets.js; the
 * transport calls them at the upgrade, on hello/auth frames, on every
 * request and on every HTTP route.
 */
export { authConfigWarnings, resolveAuthConfig, type AuthConfigInput } from './auth-config.ts';
export { MAX_PATTERNS_PER_LIST, MAX_TIMER_DELAY_MS, PatternSet, anonymousPrincipal, expiryDelayMs, principalFromClaims, type Principal } from './principal.ts';
export { TokenVerifier } from './token-verifier.ts';
export { createAuthenticator, type Authenticator } from './authenticator.ts';
export { OriginPolicy, isPreflight } from './origin.ts';
export { authFromWebSocketProtocol, bearerFromAuthorization, checkNoTokenInUrl, urlCarriesToken } from './bearer.ts';
