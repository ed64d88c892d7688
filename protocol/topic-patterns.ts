/**
 * Topic patterns, as user tokens' permission claims, device tokens' `topics` claim and the edge worker's
 * ALLOWED_TOPICS var write them:
 *
 * - `*` matches every topic;
 * - `prefix.*` matches every topic that starts with `prefix.`, at any depth
 *   (`sensors.*` matches `sensors.t` and `sensors.a.b`, but not `sensors`);
 * - anything else is an exact topic name.
 *
 * No other wildcards: a pattern is easy to read in a token and cheap to match.
 */
import { isValidTopicName } from './limits.ts';

export type TopicPattern = { kind: 'all' } | { kind: 'prefix'; prefix: string } | { kind: 'exact'; name: string };

/** Parses one pattern; undefined when it is neither `*`, `prefix.*` nor a valid topic name. */
export function parseTopicPattern(text: string): TopicPattern | undefined {
  if (text === '*') return { kind: 'all' };
  if (text.endsWith('.*')) {
    const stem = text.slice(0, -2);
    // The stem must itself be a topic name, so that `prefix.` + rest can be one.
    return isValidTopicName(stem) ? { kind: 'prefix', prefix: `${stem}.` } : undefined;
  }
  return isValidTopicName(text) ? { kind: 'exact', name: text } : undefined;
}

export function matchesTopic(pattern: TopicPattern, topic: string): boolean {
  switch (pattern.kind) {
    case 'all':
      return true;
    case 'prefix':
      return topic.length > pattern.prefix.length && topic.startsWith(pattern.prefix);
    case 'exact':
      return topic === pattern.name;
  }
}

export function matchesAny(patterns: readonly TopicPattern[], topic: string): boolean {
  for (const p of patterns) if (matchesTopic(p, topic)) return true;
  return false;
}
