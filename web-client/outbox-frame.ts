/**
 * A produce request written in the room before a record batch in its own
 * buffer: the frame is a view of that buffer, the batch not copied into a
 * frame (the memory outbox's segments, and the file and IndexedDB outboxes'
 * batches of single events encoded with room).
 */
import { utf8, utf8Length, writeUint32 } from '../protocol/index.ts';
import type { Segment } from './outbox-segment.ts';

/** The produce frame's fields before its batch's bytes, at most (`segmentFrame`): 46 bytes, the topic's, and its length's up to 3. */
export function frameRoom(topic: string): number {
  return 64 + utf8Length(topic);
}

/** Whether `segmentFrame` can write a produce frame of this segment to `topic` in its room. */
export function hasFrameRoom(seg: Segment, topic: string): boolean {
  return (seg.room ?? 0) >= frameRoom(topic);
}

const FRAME_KEYS = {
  t: utf8('t'),
  produce: utf8('produce'),
  topic: utf8('topic'),
  id: utf8('id'),
  batches: utf8('batches'),
  p: utf8('p'),
  b: utf8('b'),
};

/**
 * A produce request of this one segment, `{t: 'produce', topic, id,
 * batches: [{p, b}]}` in CBOR, written into the segment's room right before
 * its batch: the frame is a view of the segment's buffer, the batch not
 * copied (`hasFrameRoom` says whether it can). A resend writes the fields
 * again (another id) over the same bytes.
 */
export function segmentFrame(seg: Segment, topic: string, p: number, id: number): Uint8Array {
  return batchFrame(seg.batch, seg.room ?? 0, topic, p, id);
}

/**
 * `segmentFrame` of any batch with `room` bytes of its own before it in its
 * buffer (`encodeOutboxBatch`'s room: at least `frameRoom(topic)`).
 */
export function batchFrame(batch: Uint8Array, room: number, topic: string, p: number, id: number): Uint8Array {
  const topicBytes = utf8(topic);
  const head = new Uint8Array(64 + topicBytes.length);
  let pos = 0;
  head[pos++] = 0xa4; // map of 4
  pos = cborText(head, pos, FRAME_KEYS.t);
  pos = cborText(head, pos, FRAME_KEYS.produce);
  pos = cborText(head, pos, FRAME_KEYS.topic);
  pos = cborText(head, pos, topicBytes);
  pos = cborText(head, pos, FRAME_KEYS.id);
  pos = cborHead(head, pos, 0, id);
  pos = cborText(head, pos, FRAME_KEYS.batches);
  head[pos++] = 0x81; // array of 1
  head[pos++] = 0xa2; // map of 2
  pos = cborText(head, pos, FRAME_KEYS.p);
  pos = cborHead(head, pos, 0, p);
  pos = cborText(head, pos, FRAME_KEYS.b);
  pos = cborHead(head, pos, 2, batch.length);
  if (pos > room) throw new Error(`a produce frame's fields need ${pos} bytes before the batch, the segment has ${room}`);
  const frame = new Uint8Array(batch.buffer, batch.byteOffset - pos, pos + batch.length);
  frame.set(head.subarray(0, pos));
  return frame;
}

/** A CBOR head: major type and argument (a length below 2^32, or an unsigned integer below 2^53). */
function cborHead(buf: Uint8Array, pos: number, major: number, n: number): number {
  const m = major << 5;
  if (n < 24) buf[pos++] = m | n;
  else if (n < 0x100) {
    buf[pos++] = m | 24;
    buf[pos++] = n;
  } else if (n < 0x10000) {
    buf[pos++] = m | 25;
    buf[pos++] = n >>> 8;
    buf[pos++] = n & 0xff;
  } else if (n < 0x100000000) {
    buf[pos++] = m | 26;
    writeUint32(buf, pos, n);
    pos += 4;
  } else {
    // As cbor-x writes integers from 2^32 on (decoders give a number back, not a bigint): a float64.
    buf[pos++] = 0xfb;
    new DataView(buf.buffer, buf.byteOffset).setFloat64(pos, n);
    pos += 8;
  }
  return pos;
}

function cborText(buf: Uint8Array, pos: number, text: Uint8Array): number {
  pos = cborHead(buf, pos, 3, text.length);
  buf.set(text, pos);
  return pos + text.length;
}
