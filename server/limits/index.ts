/**
 * server/limits: how much a client may do — connection counts and rates,
 * per-connection quotas, HTTP produce rate per subject. Pure building blocks
 * the transport calls; refusals are typed errors with `retryAfterMs`.
 */
export { DEFAULT_CLIENT_LIMITS, type ClientLimits } from './client-limits.ts';
export { TokenBucket } from './token-bucket.ts';
export { ConnectionLimits } from './connection-limits.ts';
export { ConnectionQuota } from './connection-quota.ts';
export { SubjectQuotas } from './subject-quotas.ts';
export { ConnectionRate } from './connection-rate.ts';
