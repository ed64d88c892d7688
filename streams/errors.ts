/**
 * Failures of the stream runtime itself; the hub's refusals reach the
 * application as the client's errors (TributaryError / ClientError) as they are.
 */
export type StreamsErrorCode =
  /** The client lacks consumer groups or direct idempotent produce (an older client or hub). */
  | 'UNSUPPORTED'
  /** A task could not read its changelog back up to its fence in time. */
  | 'RESTORE_TIMEOUT'
  /** A flush failed for good: the task stopped, its partition must be restored again. */
  | 'TASK_FAILED'
  /** An internal topic could not be created. */
  | 'TOPIC_SETUP'
  /** The application was closed. */
  | 'CLOSED'
  /** A value read as a JSON view (`values: 'view'`) is not a JSON object where it was read. */
  | 'VALUE_NOT_JSON'
  /** A JSON view (`values: 'view'`) was written to. */
  | 'VALUE_READ_ONLY';

export class StreamsError extends Error {
  readonly code: StreamsErrorCode;
  constructor(code: StreamsErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'StreamsError';
    this.code = code;
  }
}
