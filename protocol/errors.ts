/**
 * The one list of error codes that every side of Tributary speaks.
 *
 * Each code has a human message template, whether retrying the same request
 * can succeed, and the HTTP status it maps to. WebSocket close codes are
 * 4000 + the HTTP status (4401, 4403, 4408, 4413, 4429).
 */

export interface ErrorSpec {
  readonly status: number;
  readonly retriable: boolean;
  readonly message: string;
}

export const ERRORS = {
  // 400: bad input
  BAD_FRAME: { status: 400, retriable: false, message: 'malformed frame' },
  BAD_REQUEST: { status: 400, retriable: false, message: 'bad request' },
  BAD_JSON: { status: 400, retriable: false, message: 'body is not valid JSON' },
  BAD_CBOR: { status: 400, retriable: false, message: 'body is not valid CBOR' },
  BAD_TOPIC_NAME: { status: 400, retriable: false, message: 'invalid topic name' },
  BAD_RECORD: { status: 400, retriable: false, message: 'invalid record' },
  BAD_BATCH: { status: 400, retriable: false, message: 'invalid record batch' },
  CORRUPT_BATCH: { status: 400, retriable: true, message: 'record batch failed its CRC check' },
  BAD_PARTITION: { status: 400, retriable: false, message: 'no such partition' },
  BAD_CONFIG: { status: 400, retriable: false, message: 'invalid topic config' },
  BAD_SEQUENCE: { status: 400, retriable: false, message: 'invalid producer sequence' },
  OUT_OF_ORDER_SEQUENCE: { status: 409, retriable: false, message: 'sequence below the highest appended and not found in the log' },
  /** A forward gap: the batch starts past the next sequence the hub expects; resend what comes before it (details.expected). */
  SEQUENCE_GAP: { status: 409, retriable: true, message: 'sequence gap: the batch starts past the next expected sequence' },
  TIMESTAMP_IN_FUTURE: { status: 400, retriable: false, message: 'record timestamp too far in the future' },
  UNSUPPORTED_VERSION: { status: 400, retriable: false, message: 'unsupported protocol version' },
  NOT_HELLO: { status: 400, retriable: false, message: 'the first frame must be hello' },
  // 401 / 403
  UNAUTHENTICATED: { status: 401, retriable: false, message: 'authentication required' },
  TOKEN_INVALID: { status: 401, retriable: false, message: 'token is invalid' },
  TOKEN_EXPIRED: { status: 401, retriable: false, message: 'token has expired' },
  FORBIDDEN: { status: 403, retriable: false, message: 'not allowed' },
  ORIGIN_FORBIDDEN: { status: 403, retriable: false, message: 'origin not allowed' },
  SUBJECT_CHANGED: { status: 403, retriable: false, message: 'a refreshed token must carry the same subject' },
  // 404 / 405 / 408 / 409
  NOT_FOUND: { status: 404, retriable: false, message: 'not found' },
  UNKNOWN_TOPIC: { status: 404, retriable: false, message: 'unknown topic' },
  UNKNOWN_SUBSCRIPTION: { status: 404, retriable: false, message: 'unknown subscription' },
  UNKNOWN_GROUP: { status: 404, retriable: false, message: 'unknown consumer group' },
  METHOD_NOT_ALLOWED: { status: 405, retriable: false, message: 'method not allowed' },
  AUTH_TIMEOUT: { status: 408, retriable: true, message: 'did not authenticate in time' },
  IDLE_TIMEOUT: { status: 408, retriable: true, message: 'connection idle for too long' },
  TOPIC_EXISTS: { status: 409, retriable: false, message: 'topic already exists' },
  CONFLICT: { status: 409, retriable: false, message: 'conflict' },
  /** A group member's generation ended (expired, expelled or left) or it does not own the partition: rejoin. */
  FENCED: { status: 409, retriable: false, message: 'not a live owner of these partitions in the current generation' },
  // 413 / 416 / 429
  HEADERS_TOO_LARGE: { status: 431, retriable: false, message: 'request header block too large' },
  FRAME_TOO_LARGE: { status: 413, retriable: false, message: 'frame too large' },
  BODY_TOO_LARGE: { status: 413, retriable: false, message: 'request body too large' },
  BATCH_TOO_LARGE: { status: 413, retriable: false, message: 'too many records in one batch' },
  RECORD_TOO_LARGE: { status: 413, retriable: false, message: 'record too large' },
  OFFSET_OUT_OF_RANGE: { status: 416, retriable: false, message: 'offset out of range' },
  RATE_LIMITED: { status: 429, retriable: true, message: 'rate limit exceeded' },
  TOO_MANY_CONNECTIONS: { status: 429, retriable: true, message: 'too many connections' },
  TOO_MANY_SUBSCRIPTIONS: { status: 429, retriable: false, message: 'too many subscriptions on this connection' },
  TOO_MANY_IN_FLIGHT: { status: 429, retriable: true, message: 'too many requests in flight' },
  SLOW_CONSUMER: { status: 429, retriable: true, message: 'consumer too slow: send buffer limit exceeded' },
  // 5xx
  INTERNAL: { status: 500, retriable: true, message: 'internal error' },
  NOT_READY: { status: 503, retriable: true, message: 'hub is not ready' },
  STORAGE_UNAVAILABLE: { status: 503, retriable: true, message: 'storage unavailable' },
  SHUTTING_DOWN: { status: 503, retriable: true, message: 'hub is shutting down' },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ERRORS;

export function isErrorCode(code: unknown): code is ErrorCode {
  return typeof code === 'string' && Object.prototype.hasOwnProperty.call(ERRORS, code);
}

/** A failure with a stable code. Everything the hub or a client reports is one of these. */
export class TributaryError extends Error {
  readonly code: ErrorCode;
  readonly retriable: boolean;
  readonly status: number;
  /** Extra machine-readable facts (earliest/logEnd for OFFSET_OUT_OF_RANGE, retryAfterMs for 429s). */
  readonly details?: Record<string, unknown>;

  constructor(code: ErrorCode, message?: string, details?: Record<string, unknown>) {
    const spec = ERRORS[code];
    super(message ?? spec.message);
    this.name = 'TributaryError';
    this.code = code;
    this.retriable = spec.retriable;
    this.status = spec.status;
    if (details) this.details = details;
  }

  /** The body every HTTP error answers with. */
  toJSON(): { error: { code: ErrorCode; message: string; retriable: boolean } & Record<string, unknown> } {
    return { error: { code: this.code, message: this.message, retriable: this.retriable, ...this.details } };
  }
}

export type ErrorBody = ReturnType<TributaryError['toJSON']>;

/** An error as an HTTP answer. */
export interface ErrorAnswer {
  status: number;
  headers: Record<string, string>;
  body: ErrorBody;
}

/** A Retry-After value: whole seconds, at least 1. */
export function retryAfterSeconds(ms: number): string {
  return String(Math.max(1, Math.ceil(ms / 1000)));
}

/**
 * The one mapping from an error to an HTTP answer, used by the hub's routes,
 * its refused WebSocket upgrades and the edge worker: status and body from
 * the error list; Retry-After from `retryAfterMs`, else `defaultRetryAfterS`
 * for a retriable 5xx; Allow for METHOD_NOT_ALLOWED; WWW-Authenticate for a
 * 401 (RFC 6750 §3: it names the scheme, and says when the token was bad).
 */
export function errorAnswer(err: TributaryError, defaultRetryAfterS = 1): ErrorAnswer {
  const headers: Record<string, string> = {};
  const retryAfterMs = err.details?.retryAfterMs;
  if (typeof retryAfterMs === 'number') headers['retry-after'] = retryAfterSeconds(retryAfterMs);
  else if (err.retriable && err.status >= 500) headers['retry-after'] = String(defaultRetryAfterS);
  if (err.code === 'METHOD_NOT_ALLOWED' && typeof err.details?.allow === 'string') headers.allow = err.details.allow;
  if (err.status === 401) headers['www-authenticate'] = err.code === 'UNAUTHENTICATED' ? 'Bearer realm="tributary"' : 'Bearer realm="tributary", error="invalid_token"';
  return { status: err.status, headers, body: err.toJSON() };
}

export function httpStatusOf(code: ErrorCode): number {
  return ERRORS[code].status;
}

/** WebSocket close code for errors that end a connection: 4000 + HTTP status. */
export function closeCodeOf(code: ErrorCode): number {
  return 4000 + ERRORS[code].status;
}

/** Rebuild a typed error from an error frame or HTTP body received from the other side. */
export function errorFromWire(body: { code?: unknown; message?: unknown } & Record<string, unknown>): TributaryError {
  const code = isErrorCode(body.code) ? body.code : 'INTERNAL';
  const { code: _c, message, retriable: _r, ...details } = body;
  return new TributaryError(code, typeof message === 'string' ? message : undefined, Object.keys(details).length ? details : undefined);
}

/** Wrap anything thrown into a TributaryError, keeping typed ones as they are. */
export function toTributaryError(err: unknown): TributaryError {
  if (err instanceof TributaryError) return err;
  return new TributaryError('INTERNAL', err instanceof Error ? err.message : String(err));
}
