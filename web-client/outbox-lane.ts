/**
 * A drain lane's parts (outbox-drain.ts): what a lane holds, how its next
 * request is cut, and what an ack of one tells `ack` listeners.
 */
import { ackOffsets, type AckFrame } from '../protocol/index.ts';
import { wireSequence, type OutboxEvent } from './outbox.ts';
import { isChunk, isSegment, type Chunk, type Segment } from './outbox-segment.ts';
import type { AckInfo } from './producer.ts';

/** Segments sent in one produce request (the hub takes up to 64 batches per frame). */
const MAX_BATCHES_PER_REQUEST = 32;
/** Room for a produce frame's own fields around its records. */
export const FRAME_SLACK_BYTES = 4096;

/** What a lane holds: single events, or a segment (a ready batch of many). A batch is one segment or events only. */
export type Item = OutboxEvent | Segment;

/** Events an item stands for. */
export const countOf = (x: Item | Chunk): number => (isSegment(x) ? x.count : isChunk(x) ? x.live : 1);

export interface Lane {
  topic: string;
  /** The partition; -1 for the records-form lane of an older client's events. */
  p: number;
  key: string;
  events: Item[];
  running: boolean;
  maxRecords: number;
  /** Requests this lane may have in flight: see Drainer.fullStart; 1 after a refusal, doubling with each ack. */
  window: number;
}

/** An acked batch as `ack` listeners see it; the per-event list is built only if a listener reads it. */
export class BatchAck implements AckInfo {
  readonly duplicate: boolean;
  private list?: AckInfo['records'];

  constructor(
    readonly topic: string,
    private readonly batch: Item[],
    private readonly ack: AckFrame,
  ) {
    this.duplicate = ack.dup === true;
  }

  get records(): AckInfo['records'] {
    if (this.list) return this.list;
    const batch = this.batch;
    let records: AckInfo['records'];
    if (isSegment(batch[0])) {
      // Segments: part j of the ack answers segment j.
      records = [];
      for (let j = 0; j < batch.length; j++) {
        const seg = batch[j] as Segment;
        const part = this.ack.parts[j];
        for (let k = 0; k < seg.count; k++) {
          const offset = part ? (part.offs ? part.offs[k] : part.o + k) : -1;
          records.push({ id: seg.ids[k], seq: seg.seq + k, partition: part ? part.p : -1, offset: offset ?? -1 });
        }
      }
    } else {
      const offsets = ackOffsets(this.ack, batch.length);
      records = new Array<AckInfo['records'][number]>(batch.length);
      for (let i = 0; i < batch.length; i++) {
        const e = batch[i] as OutboxEvent;
        records[i] = { id: e.id, seq: e.seq, partition: offsets[i]?.partition ?? -1, offset: offsets[i]?.offset ?? -1 };
      }
    }
    this.list = records;
    return records;
  }

  toJSON(): AckInfo {
    return { topic: this.topic, duplicate: this.duplicate, records: this.records };
  }
}

/**
 * A lane's next request: events in sequence order with contiguous wire
 * sequences within the batch bounds, or ready segments as they are. A
 * segment that cannot go as it is becomes single events first (`split`).
 */
export function takeBatch(lane: Lane, skipped: number[] | undefined, maxBytes: number, maxFrameBytes: number, split: (seg: Segment) => OutboxEvent[]): Item[] {
  const ev = lane.events;
  const head = ev[0];
  if (isSegment(head)) {
    // Ready batches go as they are, several small ones in one request (a batch each), unless their
    // sequences need renumbering, one is over the lane's (halved) record limit, or a lone record too
    // large for a frame must be refused here: then as single events.
    if (!skipped?.length && head.count <= lane.maxRecords && head.batch.length + FRAME_SLACK_BYTES <= maxFrameBytes) {
      let n = 1;
      let count = head.count;
      let bytes = head.batch.length;
      for (; n < ev.length && n < MAX_BATCHES_PER_REQUEST; n++) {
        const s = ev[n];
        const prev = ev[n - 1] as Segment;
        if (!isSegment(s) || s.seq !== prev.seq + prev.count || count + s.count > lane.maxRecords || bytes + s.batch.length > maxBytes) break;
        count += s.count;
        bytes += s.batch.length;
      }
      return ev.splice(0, n);
    }
    ev.splice(0, 1, ...split(head));
  }
  let n = 1;
  let bytes = ev[0].bytes;
  if (!skipped?.length) {
    // No refusals in this lane: sequences are dense, nothing to renumber.
    while (n < ev.length && n < lane.maxRecords && !isSegment(ev[n]) && ev[n].seq === ev[n - 1].seq + 1 && bytes + ev[n].bytes <= maxBytes) bytes += ev[n++].bytes;
    return ev.splice(0, n);
  }
  let wire = wireSequence(ev[0].seq, skipped);
  while (n < ev.length && n < lane.maxRecords && !isSegment(ev[n]) && wireSequence(ev[n].seq, skipped) === wire + 1 && bytes + ev[n].bytes <= maxBytes) {
    wire++;
    bytes += ev[n].bytes;
    n++;
  }
  return ev.splice(0, n);
}
