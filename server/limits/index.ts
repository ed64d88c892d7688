/**
 * server/limits: how much a client may do — connection counts and rates,
 * per-connection quotas, HTTP produce rate per subject. Pure building blocks
 * the transport calls; refusals are typed errors with `retryAfterMs`.
 */
export { DEFAULT_CLIENT_LIMITS, type ClientLimits } from './client-limits.ts';
export { TokenBucket } from './token-bucket.ts';
export { ConnectionLimits, type ConnectionLimitsConfig } from './connection-limits.ts';
export { ConnectionQuota, type QuotaLimits } from './connection-quota.ts';
export { SubjectQuotas, type SubjectRateLimits } from './subject-quotas.ts';
export { ConnectionRate, type ConnectionRateLimits } from './connection-rate.ts';
