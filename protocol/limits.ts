import { TributaryError } from './errors.ts';

/**
 * Protocol-wide limits. The hub may configure tighter ones; clients validate
 * against these before anything leaves the device.
 */
export const LIMITS = {
  maxFrameBytes: 4 * 1024 * 1024,
  maxRecordsPerBatch: 10_000,
  maxKeyBytes: 16 * 1024,
  maxValueBytes: 1024 * 1024,
  maxHeaders: 64,
  maxHeaderNameBytes: 256,
  maxHeaderValueBytes: 16 * 1024,
  maxProducerIdBytes: 255,
  maxTopicNameLength: 249,
  maxPartitions: 1024,
  maxClientIdBytes: 256,
  maxTokenBytes: 16 * 1024,
  /**
   * Deepest nesting of arrays, maps (and CBOR tags) in a frame, an HTTP body
   * or a record value the hub decodes: far above any real document, far
   * below what exhausts a decoder's stack.
   */
  maxNestingDepth: 64,
  /** A batch's encoded size may not exceed a frame. */
  maxBatchBytes: 4 * 1024 * 1024,
} as const;

const TOPIC_RE = /^[a-zA-Z0-9._-]{1,249}$/;

/** Kafka's rule: [a-zA-Z0-9._-]{1,249}, but not "." or "..". */
export function isValidTopicName(name: unknown): name is string {
  return typeof name === 'string' && TOPIC_RE.test(name) && name !== '.' && name !== '..';
}

export function assertTopicName(name: unknown): string {
  if (!isValidTopicName(name)) {
    throw new TributaryError('BAD_TOPIC_NAME', `invalid topic name ${JSON.stringify(String(name).slice(0, 80))}: must match [a-zA-Z0-9._-]{1,249} and not be "." or ".."`);
  }
  return name;
}
