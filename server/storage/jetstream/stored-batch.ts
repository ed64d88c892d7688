/**
 * What one JetStream message carries: one record batch exactly as the
 * embedded engine stores it (stamped base offset and append time, CRC), so
 * that a fetch sends the message bytes to consumers untouched (DESIGN.md,
 * idea 1). Offsets stay dense per partition: the message at stream sequence
 * s holds offsets [base, base + count), and s + 1 starts at base + count.
 *
 * Headers repeat what readers and watchers need without the body (the
 * watcher consumes headers only): `Trib-Off: <base> <count> <appendTime>`,
 * and for a producer's batch `Trib-Prev: <stream seq of that producer's
 * previous batch here, 0 if none>`, which chains a producer's batches so an
 * old retry can be found without scanning the partition.
 */
import { readInt64, readUint32, BATCH_HEADER_BYTES } from '../../../protocol/batch.ts';
import { fromUtf8 } from '../../../protocol/record.ts';

export const H_OFFSETS = 'Trib-Off';
export const H_PREV = 'Trib-Prev';

export interface BatchRef {
  seq: number;
  base: number;
  count: number;
  appendTime: number;
}

/** The producer fields of a stamped batch (pid '' when it has none). */
export interface BatchProducer {
  pid: string;
  firstSeq: number;
  lastSeq: number;
}

export function offsetsHeader(base: number, count: number, appendTime: number): string {
  return `${base} ${count} ${appendTime}`;
}

export function parseOffsetsHeader(seq: number, v: string | undefined): BatchRef | null {
  if (!v) return null;
  const [b, c, t] = v.split(' ').map(Number);
  if (!Number.isSafeInteger(b) || !Number.isSafeInteger(c) || !Number.isSafeInteger(t)) return null;
  return { seq, base: b, count: c, appendTime: t };
}

/** Reads the offsets of a stored batch from its own bytes. Offsets are dense within a produced batch. */
export function refOfBatch(seq: number, b: Uint8Array): BatchRef {
  return { seq, base: readInt64(b, 0), count: readUint32(b, 23) + 1, appendTime: readInt64(b, 43) };
}

/** The offset after a stored batch's last record (refOfBatch's base + count, without the object: once per replayed message). */
export function endOfBatch(b: Uint8Array): number {
  return readInt64(b, 0) + readUint32(b, 23) + 1;
}

export function producerOfBatch(b: Uint8Array): BatchProducer {
  const baseSeq = readInt64(b, 51);
  const pidLen = b[63];
  if (baseSeq < 0 || pidLen === 0) return { pid: '', firstSeq: -1, lastSeq: -1 };
  return { pid: fromUtf8(b.subarray(BATCH_HEADER_BYTES, BATCH_HEADER_BYTES + pidLen)), firstSeq: baseSeq, lastSeq: baseSeq + readUint32(b, 59) };
}
