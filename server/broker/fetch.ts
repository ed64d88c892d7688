/**
 * Reads for the HTTP API: records of one partition from an offset (or the
 * first at or after a timestamp), decoded for JSON/CBOR answers. Subscribers
 * never come here: they get the stored batches as bytes.
 */
import { decodeBatches } from '../../protocol/batch.ts';
import { TributaryError } from '../../protocol/errors.ts';
import type { StoredRecord } from '../../protocol/record.ts';
import type { LogStore } from '../storage/log-store.ts';
import type { Topics } from './topics.ts';

export interface FetchRequest {
  topic: string;
  partition: number;
  offset?: number;
  timestamp?: number;
  /** Max records returned. */
  limit: number;
  /** Max batch bytes read (at least one batch is read when one is available). */
  maxBytes: number;
}

export interface FetchResult {
  records: StoredRecord[];
  /** The offset to ask for next. */
  nextOffset: number;
  highWatermark: number;
}

export async function fetchRecords(store: LogStore, topics: Topics, req: FetchRequest): Promise<FetchResult> {
  const info = topics.require(req.topic);
  if (req.partition >= info.partitions) {
    throw new TributaryError('BAD_PARTITION', `partition ${req.partition} does not exist; ${req.topic} has ${info.partitions}`, { partitions: info.partitions });
  }
  let offset: number;
  if (req.offset !== undefined) offset = req.offset;
  else if (req.timestamp !== undefined) offset = await store.offsetForTimestamp(req.topic, req.partition, req.timestamp);
  else offset = store.offsets(req.topic, req.partition).earliest;

  const records: StoredRecord[] = [];
  let next = offset;
  let budget = req.maxBytes;
  let hw = 0;
  // A few reads at most: each returns at least one batch, and both limits only shrink.
  while (records.length < req.limit && budget > 0) {
    const res = await store.read(req.topic, req.partition, next, budget);
    hw = res.highWatermark;
    if (res.bytes.length === 0) {
      next = Math.max(next, res.nextOffset);
      break;
    }
    budget -= res.bytes.length;
    // Stored batches were CRC-checked when appended and on recovery: trusted decode.
    for (const r of decodeBatches(res.bytes, next, true)) {
      if (records.length >= req.limit) break;
      records.push(r);
    }
    next = records.length >= req.limit ? records[records.length - 1].offset + 1 : res.nextOffset;
    if (next >= hw) break;
  }
  return { records, nextOffset: next, highWatermark: hw };
}
