/**
 * Failures that belong to the client itself (the outbox, the connection's
 * life) rather than to the hub. Hub refusals stay `TributaryError`s from
 * protocol/errors with the hub's code; validation at `send()` throws those
 * too (BAD_TOPIC_NAME, BAD_RECORD, RECORD_TOO_LARGE), so one `code` switch
 * covers everything a caller sees.
 */

export type ClientErrorCode =
  /** The outbox holds `maxEvents` events or `maxBytes` bytes already. */
  | 'OUTBOX_FULL'
  /** The storage refused the write (IndexedDB QuotaExceededError, ENOSPC). */
  | 'OUTBOX_QUOTA'
  /** The storage failed otherwise (IndexedDB blocked or closed, an I/O error). */
  | 'OUTBOX_STORAGE'
  /** Events queued under one token subject wait while another subject is signed in. */
  | 'SUBJECT_MISMATCH'
  /** The hub refused the credentials (close 4401/4403 or a TOKEN_* error) and retrying will not help. */
  | 'AUTH_FAILED'
  /** The client (or subscription) was closed. */
  | 'CLOSED'
  /** The connection dropped before the hub answered; the request may or may not have been applied. */
  | 'DISCONNECTED';

const RETRIABLE: Record<ClientErrorCode, boolean> = {
  OUTBOX_FULL: true,
  OUTBOX_QUOTA: false,
  OUTBOX_STORAGE: true,
  SUBJECT_MISMATCH: false,
  AUTH_FAILED: false,
  CLOSED: false,
  DISCONNECTED: true,
};

export class ClientError extends Error {
  readonly code: ClientErrorCode;
  readonly retriable: boolean;
  /**
   * For AUTH_FAILED: `code`, the hub's verdict (TOKEN_INVALID, TOKEN_EXPIRED,
   * UNAUTHENTICATED, SUBJECT_CHANGED, …), and `closeCode` (4401, 4403) when
   * the hub closed the socket over it.
   */
  readonly details?: Record<string, unknown>;

  constructor(code: ClientErrorCode, message: string, options?: { cause?: unknown; details?: Record<string, unknown> }) {
    super(message, options);
    this.name = 'ClientError';
    this.code = code;
    this.retriable = RETRIABLE[code];
    if (options?.details) this.details = options.details;
  }
}
