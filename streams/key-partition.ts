/**
 * partitionForKey (murmur2 of the key's UTF-8 bytes, as Kafka picks) for the
 * string keys a sink writes, without a new byte array per record: the key
 * is written into one scratch buffer (a plain loop for ASCII keys) and
 * hashed there. Same answer as protocol's partitionForKey for every key.
 */
import { murmur2, partitionForKey } from '../protocol/index.ts';

/** Keys up to this many chars go through the scratch buffer (3 bytes per char at most); longer ones take the general path. */
const SCRATCH_KEY_CHARS = 1024;
const scratch = new Uint8Array(SCRATCH_KEY_CHARS * 3);
const encoder = new TextEncoder();

export function keyPartition(key: string, partitions: number): number {
  const n = key.length;
  if (n > SCRATCH_KEY_CHARS) return partitionForKey(key, partitions);
  let len = n;
  for (let i = 0; i < n; i++) {
    const c = key.charCodeAt(i);
    if (c > 0x7f) {
      len = encoder.encodeInto(key, scratch).written;
      break;
    }
    scratch[i] = c;
  }
  return (murmur2(scratch.subarray(0, len)) & 0x7fffffff) % partitions;
}
