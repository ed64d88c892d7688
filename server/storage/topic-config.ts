/** Validation of topic configs (hub defaults and per-topic overrides). */
import { TributaryError } from '../../protocol/errors.ts';
import { LIMITS } from '../../protocol/limits.ts';
import type { TopicConfig } from './log-store.ts';

/** Segment files are indexed with u32 positions and relative offsets. */
const MAX_SEGMENT_BYTES = 1024 * 1024 * 1024;
const MIN_SEGMENT_BYTES = 1024;

const KEYS: Array<keyof TopicConfig> = ['retentionMs', 'retentionBytes', 'cleanupPolicy', 'deleteRetentionMs', 'fsync', 'fsyncIntervalMs', 'segmentBytes', 'segmentMs', 'replicas'];

function bad(msg: string): never {
  throw new TributaryError('BAD_CONFIG', msg);
}

function int(v: unknown, name: string, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > max) bad(`${name} must be an integer in [${min}, ${max}]`);
  return v;
}

/** Checks an override object: known keys, right types and ranges. Returns a clean copy. */
export function checkConfigOverrides(c: unknown): Partial<TopicConfig> {
  if (c === undefined) return {};
  if (typeof c !== 'object' || c === null || Array.isArray(c)) bad('config must be an object');
  const out: Partial<TopicConfig> = {};
  for (const [k, v] of Object.entries(c)) {
    if (v === undefined) continue;
    switch (k as keyof TopicConfig) {
      case 'retentionMs':
      case 'retentionBytes':
      case 'segmentMs':
        out[k as 'retentionMs'] = int(v, k, -1);
        break;
      case 'deleteRetentionMs':
        out.deleteRetentionMs = int(v, k, 0);
        break;
      case 'fsyncIntervalMs':
        out.fsyncIntervalMs = int(v, k, 1, 3600_000);
        break;
      case 'segmentBytes':
        out.segmentBytes = int(v, k, MIN_SEGMENT_BYTES, MAX_SEGMENT_BYTES);
        break;
      case 'replicas':
        // JetStream allows 1..5 copies of a stream; 0 = the engine's default.
        out.replicas = int(v, k, 0, 5);
        break;
      case 'cleanupPolicy':
        if (v !== 'delete' && v !== 'compact') bad('cleanupPolicy must be "delete" or "compact"');
        out.cleanupPolicy = v;
        break;
      case 'fsync':
        if (v !== 'always' && v !== 'interval' && v !== 'never') bad('fsync must be "always", "interval" or "never"');
        out.fsync = v;
        break;
      default:
        bad(`unknown config key ${JSON.stringify(k)}; known: ${KEYS.join(', ')}`);
    }
  }
  return out;
}

export function checkPartitions(n: unknown): number {
  return int(n, 'partitions', 1, LIMITS.maxPartitions);
}
