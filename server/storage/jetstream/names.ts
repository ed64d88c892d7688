/**
 * How topics and partitions map to JetStream names.
 *
 * One stream per partition: `TRIB_<topic>_<p>`, subjects `trib.<topic>.<p>.>`.
 * A batch without a producer id is published on `trib.<topic>.<p>.n`; one of
 * producer P on `trib.<topic>.<p>.p.<P as base64url>`, so that the stream
 * itself answers "P's last batch here" (a get-last-by-subject) and guards it
 * (expected last subject sequence): the producer state lives in the log,
 * written by the same atomic append as the batch.
 *
 * Topic names are [a-zA-Z0-9._-]; '.' separates subject tokens and may not
 * appear in a stream name, so '_' becomes '__' and '.' becomes '_d'. Names
 * too long for a stream directory are shortened with a hash.
 */
import { createHash } from 'node:crypto';

/** Stream names become directory names on the servers: stay well below 255 bytes. */
const MAX_STREAM_NAME_CHARS = 200;

/** The key-value bucket holding the topic catalog (name → partitions, config). */
export const TOPICS_BUCKET = 'tributary_topics';

function encodeTopic(topic: string): string {
  const enc = topic.replace(/_/g, '__').replace(/\./g, '_d');
  if (enc.length <= MAX_STREAM_NAME_CHARS - 20) return enc;
  return `${enc.slice(0, 100)}_h${createHash('sha256').update(topic).digest('hex').slice(0, 32)}`;
}

export function streamName(topic: string, partition: number): string {
  return `TRIB_${encodeTopic(topic)}_${partition}`;
}

/**
 * A partition's mirror in another region (a cluster of the same JetStream
 * super-cluster, where stream names are global): `TRIBM_<region>_<topic>_<p>`.
 */
export function mirrorStreamName(region: string, topic: string, partition: number): string {
  return `TRIBM_${encodeTopic(region)}_${encodeTopic(topic)}_${partition}`;
}

export function subjectPrefix(topic: string, partition: number): string {
  return `trib.${encodeTopic(topic)}.${partition}`;
}

export function plainSubject(topic: string, partition: number): string {
  return `${subjectPrefix(topic, partition)}.n`;
}

export function producerSubject(topic: string, partition: number, producerId: string): string {
  return `${subjectPrefix(topic, partition)}.p.${Buffer.from(producerId, 'utf8').toString('base64url')}`;
}

/** A producer id that goes into a message id as it is: no CR or LF (they end a header line), no leading white space (trimmed from a header value), no leading '~'. */
const PLAIN_PID = /^(?![\s~])[^\r\n]*$/;

/**
 * The message id of producer P's batch of sequences first..last: `P:first-last`, the same on every hub
 * (JetStream's duplicate detection answers a retry through another hub). A producer id that a header
 * value cannot carry as it is is written as `~` and its UTF-8 in base64url (a CR or LF would end the
 * header line; a leading space would be trimmed, and ' a' taken for 'a'); ids starting with '~' too, so
 * that no two producers share a message id.
 */
export function producerMsgId(producerId: string, first: number, last: number): string {
  const p = PLAIN_PID.test(producerId) ? producerId : `~${Buffer.from(producerId, 'utf8').toString('base64url')}`;
  return `${p}:${first}-${last}`;
}

/** KV keys allow [-/_=.a-zA-Z0-9]: the topic name is valid as it is, but keep to one token-safe form. */
export function topicKey(topic: string): string {
  return encodeTopic(topic);
}
