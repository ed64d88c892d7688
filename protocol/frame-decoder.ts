/**
 * Parses untrusted bytes into a typed client frame, once, at the edge
 * (STYLE.md, convention 4). Never throws: a bad frame becomes a typed error,
 * carrying the request id when one could be read so the reply can name it.
 */
import { findInvalidText } from './cbor-scan.ts';
import { decodeCbor, decodeCborChecked } from './codec.ts';
import { TributaryError, type ErrorCode } from './errors.ts';
import { LIMITS, isValidTopicName } from './limits.ts';
import type { ClientFrame, CommitFrame, ProduceBatchesFrame, ProduceFrame, ProducedBatch, StartPosition, SubscribeFrame } from './frames.ts';
import { batchSizeAt, checkBatch, readBatchHeader } from './batch.ts';
import { crc32c as portableCrc32c, type Crc32c } from './crc32c.ts';
import type { EncodedRecord, Header } from './record.ts';
import { VALUE_ENCODINGS, recordLimitFault, utf8Length } from './record.ts';

export type DecodeResult<T> = { ok: true; frame: T } | { ok: false; error: TributaryError; id?: number };

const MAX_SAFE = Number.MAX_SAFE_INTEGER;

function fail(message: string, code: ErrorCode = 'BAD_FRAME'): never {
  throw new TributaryError(code, message);
}

const isObj = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null && !Array.isArray(x) && !(x instanceof Uint8Array);
const isBytes = (x: unknown): x is Uint8Array => x instanceof Uint8Array;
const isUint = (x: unknown, max = MAX_SAFE): x is number => typeof x === 'number' && Number.isInteger(x) && x >= 0 && x <= max;

function str(o: Record<string, unknown>, field: string, maxBytes: number, required: true): string;
function str(o: Record<string, unknown>, field: string, maxBytes: number, required: false): string | undefined;
function str(o: Record<string, unknown>, field: string, maxBytes: number, required: boolean): string | undefined {
  const v = o[field];
  if (v === undefined || v === null) {
    if (required) fail(`${field} is required`);
    return undefined;
  }
  if (typeof v !== 'string') fail(`${field} must be a string`);
  if (v.length > maxBytes || utf8Length(v) > maxBytes) fail(`${field} longer than ${maxBytes} bytes`, 'BAD_REQUEST');
  return v;
}

function uint(o: Record<string, unknown>, field: string, max = MAX_SAFE): number {
  const v = o[field];
  if (!isUint(v, max)) fail(`${field} must be an integer in [0, ${max}]`);
  return v;
}

function topic(o: Record<string, unknown>): string {
  const t = o.topic;
  if (!isValidTopicName(t)) fail('topic must match [a-zA-Z0-9._-]{1,249} and not be "." or ".."', 'BAD_TOPIC_NAME');
  return t;
}

/** Validates one wire record and returns it in the record model. `now` stamps a missing timestamp. Throws TributaryError. */
export function parseWireRecord(x: unknown, index: number, now: number): EncodedRecord & { partition?: number } {
  if (!isObj(x)) fail(`record ${index} must be a map`, 'BAD_RECORD');
  const k = x.k;
  let key: EncodedRecord['key'] = null;
  if (k !== undefined && k !== null) {
    if (typeof k !== 'string' && !isBytes(k)) fail(`record ${index}: key must be a string, bytes or null`, 'BAD_RECORD');
    key = k;
  }
  const v = x.v;
  if (v !== null && !isBytes(v)) fail(`record ${index}: value must be bytes or null`, 'BAD_RECORD');
  const e = x.e ?? 0;
  if (e !== 0 && e !== 1 && e !== 2) fail(`record ${index}: e must be 0 (bytes), 1 (json) or 2 (cbor)`, 'BAD_RECORD');
  const headers: Header[] = [];
  if (x.h !== undefined && x.h !== null) {
    if (!Array.isArray(x.h)) fail(`record ${index}: h must be an array of [name, value] pairs`, 'BAD_RECORD');
    for (const h of x.h) {
      if (!Array.isArray(h) || h.length !== 2 || typeof h[0] !== 'string') fail(`record ${index}: each header is [string name, string|bytes value]`, 'BAD_RECORD');
      const [name, value] = h;
      if (typeof value !== 'string' && !isBytes(value)) fail(`record ${index}: header value must be a string or bytes`, 'BAD_RECORD');
      headers.push([name, value]);
    }
  }
  let timestamp = now;
  if (x.ts !== undefined && x.ts !== null) {
    if (!isUint(x.ts)) fail(`record ${index}: ts must be ms since the epoch`, 'BAD_RECORD');
    timestamp = x.ts;
  }
  const fault = recordLimitFault(key, v, headers);
  if (fault) fail(`record ${index}: ${fault.message}`, fault.code);
  const rec: EncodedRecord & { partition?: number } = { key, value: v, encoding: VALUE_ENCODINGS[e], headers, timestamp };
  if (x.p !== undefined && x.p !== null) {
    if (!isUint(x.p, LIMITS.maxPartitions - 1)) fail(`record ${index}: p must be a partition number`, 'BAD_PARTITION');
    rec.partition = x.p;
  }
  return rec;
}

function parseFrom(x: unknown): StartPosition {
  if (x === undefined || x === null) return 'latest';
  if (x === 'earliest' || x === 'latest') return x;
  if (isObj(x)) {
    if (x.offset !== undefined) {
      if (!isUint(x.offset)) fail('from.offset must be a non-negative integer');
      return { offset: x.offset };
    }
    if (x.timestamp !== undefined) {
      if (!isUint(x.timestamp)) fail('from.timestamp must be ms since the epoch');
      return { timestamp: x.timestamp };
    }
  }
  return fail('from must be "earliest", "latest", {offset} or {timestamp}');
}

/** Most batches one produce frame may carry (the frame size bounds their bytes). */
export const MAX_BATCHES_PER_FRAME = 64;

function parseProduceBatches(o: Record<string, unknown>, id: number, t: string, crc: Crc32c): ProduceBatchesFrame {
  if (o.records !== undefined || o.pid !== undefined || o.seq !== undefined) fail('a produce frame carries records (with pid, seq) or batches, not both');
  const list = o.batches;
  if (!Array.isArray(list) || list.length === 0) fail('batches must be a non-empty array', 'BAD_BATCH');
  if (list.length > MAX_BATCHES_PER_FRAME) fail(`more than ${MAX_BATCHES_PER_FRAME} batches in one frame`, 'BATCH_TOO_LARGE');
  const batches = new Array<ProducedBatch>(list.length);
  for (let i = 0; i < list.length; i++) {
    const x = list[i];
    if (!isObj(x) || !isBytes(x.b)) fail(`batch ${i} must be {p, b: bytes}`, 'BAD_BATCH');
    if (!isUint(x.p, LIMITS.maxPartitions - 1)) fail(`batch ${i}: p must be a partition number`, 'BAD_PARTITION');
    const b = x.b;
    if (batchSizeAt(b, 0) !== b.length) fail(`batch ${i}: its length field does not match its ${b.length} bytes`, 'BAD_BATCH');
    const fault = checkBatch(b, 0, b.length, crc, true);
    if (fault) fail(`batch ${i} is ${fault}`, fault === 'bad-crc' ? 'CORRUPT_BATCH' : 'BAD_BATCH');
    const h = readBatchHeader(b, 0);
    if (h.lastOffsetDelta !== h.recordCount - 1) fail(`batch ${i}: offset deltas must run 0..count-1`, 'BAD_BATCH');
    if (h.producerId === '' ? h.baseSequence !== -1 : h.baseSequence < 0) fail(`batch ${i}: a producer id needs a base sequence, and only then`, 'BAD_SEQUENCE');
    if (h.baseSequence + h.lastSequenceDelta > MAX_SAFE) fail(`batch ${i}: sequence overflow`, 'BAD_SEQUENCE');
    batches[i] = {
      partition: x.p,
      batch: b,
      recordCount: h.recordCount,
      producerId: h.producerId,
      baseSequence: h.baseSequence,
      lastSequence: h.baseSequence < 0 ? -1 : h.baseSequence + h.lastSequenceDelta,
      maxTimestamp: h.maxTimestamp,
    };
  }
  return { t: 'produce', id, topic: t, batches };
}

function parseProduce(o: Record<string, unknown>, id: number, now: number, crc: Crc32c): ProduceFrame | ProduceBatchesFrame {
  const t = topic(o);
  if (o.batches !== undefined) return parseProduceBatches(o, id, t, crc);
  const pid = str(o, 'pid', LIMITS.maxProducerIdBytes, false);
  let seq: number | undefined;
  if (o.seq !== undefined && o.seq !== null) {
    if (pid === undefined) fail('seq needs pid', 'BAD_SEQUENCE');
    if (!isUint(o.seq)) fail('seq must be a non-negative integer', 'BAD_SEQUENCE');
    seq = o.seq;
  }
  if (pid !== undefined && seq === undefined) fail('pid needs seq', 'BAD_SEQUENCE');
  const recs = o.records;
  if (!Array.isArray(recs) || recs.length === 0) fail('records must be a non-empty array', 'BAD_RECORD');
  if (recs.length > LIMITS.maxRecordsPerBatch) fail(`${recs.length} records exceed the limit of ${LIMITS.maxRecordsPerBatch}`, 'BATCH_TOO_LARGE');
  if (seq !== undefined && seq + recs.length > MAX_SAFE) fail('sequence overflow', 'BAD_SEQUENCE');
  const records = new Array<EncodedRecord & { partition?: number }>(recs.length);
  for (let i = 0; i < recs.length; i++) records[i] = parseWireRecord(recs[i], i, now);
  const f: ProduceFrame = { t: 'produce', id, topic: t, records };
  if (pid !== undefined) {
    f.pid = pid;
    f.seq = seq;
  }
  return f;
}

function parseSubscribe(o: Record<string, unknown>, id: number): SubscribeFrame {
  const f: SubscribeFrame = { t: 'subscribe', id, topic: topic(o), from: parseFrom(o.from) };
  if (o.partitions !== undefined && o.partitions !== null) {
    if (!Array.isArray(o.partitions) || o.partitions.length === 0 || o.partitions.length > LIMITS.maxPartitions) fail('partitions must be a non-empty array');
    for (const p of o.partitions) if (!isUint(p, LIMITS.maxPartitions - 1)) fail('partitions must hold partition numbers', 'BAD_PARTITION');
    f.partitions = [...new Set(o.partitions as number[])];
  }
  if (o.positions !== undefined && o.positions !== null) {
    if (!isObj(o.positions)) fail('positions must be a map of partition → offset');
    const entries = Object.entries(o.positions);
    if (entries.length > LIMITS.maxPartitions) fail('too many positions');
    const positions: Record<string, number> = {};
    for (const [p, off] of entries) {
      if (!/^\d{1,4}$/.test(p) || Number(p) >= LIMITS.maxPartitions) fail('positions keys must be partition numbers', 'BAD_PARTITION');
      if (!isUint(off)) fail('positions values must be offsets');
      positions[p] = off;
    }
    f.positions = positions;
  }
  const group = str(o, 'group', 249, false);
  if (group !== undefined) {
    if (!isValidTopicName(group)) fail('group must match [a-zA-Z0-9._-]{1,249}');
    f.group = group;
  }
  parseGroupMember(o, f);
  if (o.credit !== undefined && o.credit !== null) f.credit = uint(o, 'credit', 2 ** 40);
  if (o.onOutOfRange !== undefined && o.onOutOfRange !== null) {
    if (o.onOutOfRange !== 'earliest' && o.onOutOfRange !== 'latest' && o.onOutOfRange !== 'error') fail('onOutOfRange must be earliest, latest or error');
    f.onOutOfRange = o.onOutOfRange;
  }
  return f;
}

// ---------- consumer groups (kept together: subscribe's member, commit) ----------

/** Longest member id a client may send back (the hub issues UUIDs). */
export const MAX_MEMBER_ID_BYTES = 64;

function parseGroupMember(o: Record<string, unknown>, f: SubscribeFrame): void {
  const member = str(o, 'member', MAX_MEMBER_ID_BYTES, false);
  if (member === undefined) return;
  if (f.group === undefined) fail('member needs group');
  f.member = member;
}

function parseCommit(o: Record<string, unknown>, id: number): CommitFrame {
  const group = str(o, 'group', 249, true);
  if (!isValidTopicName(group)) fail('group must match [a-zA-Z0-9._-]{1,249}');
  const offsets = o.offsets;
  if (!Array.isArray(offsets) || offsets.length === 0 || offsets.length > LIMITS.maxPartitions) fail('offsets must be a non-empty array of [partition, offset]');
  for (const e of offsets) if (!Array.isArray(e) || e.length !== 2 || !isUint(e[0], LIMITS.maxPartitions - 1) || !isUint(e[1])) fail('offsets must be [partition, offset] pairs');
  const f: CommitFrame = { t: 'commit', id, group, topic: topic(o), offsets: offsets as Array<[number, number]> };
  const member = str(o, 'member', MAX_MEMBER_ID_BYTES, false);
  if (member !== undefined) f.member = member;
  if (o.generation !== undefined && o.generation !== null) {
    if (member === undefined) fail('generation needs member');
    f.generation = uint(o, 'generation');
  }
  return f;
}

function parse(o: Record<string, unknown>, id: number, now: number, crc: Crc32c): ClientFrame {
  switch (o.t) {
    case 'hello': {
      const v = uint(o, 'v', 65535);
      const f: ClientFrame = { t: 'hello', id, v };
      const client = str(o, 'client', LIMITS.maxClientIdBytes, false);
      if (client !== undefined) f.client = client;
      // Only the frame size bounds a token here: the verifier refuses one over
      // maxTokenBytes as TOKEN_INVALID, so a failed hello closes with 4401 as any bad token does.
      const token = str(o, 'token', LIMITS.maxFrameBytes, false);
      if (token !== undefined) f.token = token;
      return f;
    }
    case 'auth':
      return { t: 'auth', id, token: str(o, 'token', LIMITS.maxFrameBytes, true) };
    case 'produce':
      return parseProduce(o, id, now, crc);
    case 'subscribe':
      return parseSubscribe(o, id);
    case 'credit':
      return { t: 'credit', sub: uint(o, 'sub', 2 ** 31), bytes: uint(o, 'bytes', 2 ** 40) };
    case 'unsubscribe':
      return { t: 'unsubscribe', id, sub: uint(o, 'sub', 2 ** 31) };
    case 'metadata':
      return o.create === true ? { t: 'metadata', id, topic: topic(o), create: true } : { t: 'metadata', id, topic: topic(o) };
    case 'ping':
      return { t: 'ping', id };
    case 'commit':
      return parseCommit(o, id);
    case 'heartbeat':
      return { t: 'heartbeat', id, sub: uint(o, 'sub', 2 ** 31) };
    case 'confirm':
      return { t: 'confirm', id, sub: uint(o, 'sub', 2 ** 31), generation: uint(o, 'generation') };
    default:
      return fail(`unknown frame type ${JSON.stringify(String(o.t).slice(0, 40))}`);
  }
}

/**
 * A frame with a text string that is not UTF-8 is refused whole, never
 * stored with the replacement characters the decoder put in: BAD_RECORD
 * when the string is in a produced record, BAD_FRAME elsewhere.
 */
export function invalidTextError(raw: unknown): TributaryError {
  const where = findInvalidText(raw, LIMITS.maxNestingDepth);
  const rec = where === undefined ? null : /^records\[(\d+)\]\.(k|h\[(\d+)\]\[(0|1)\])/.exec(where);
  if (rec) {
    const field = rec[2] === 'k' ? 'key' : `header ${rec[3]} ${rec[4] === '0' ? 'name' : 'value'}`;
    return new TributaryError('BAD_RECORD', `record ${rec[1]}: ${field} is not valid UTF-8 (send arbitrary bytes as a CBOR byte string)`);
  }
  const text = `${where === undefined ? 'a text string' : where} is not valid UTF-8`;
  return where?.startsWith('records[') ? new TributaryError('BAD_RECORD', text) : new TributaryError('BAD_FRAME', `frame: ${text}`);
}

/**
 * Decodes one client frame from untrusted bytes. `maxFrameBytes` is checked
 * before any parsing; every field is checked for type, range and size, and
 * every producer-encoded batch whole (the hub passes its native CRC-32C).
 * Byte fields are views into `bytes`.
 */
export function decodeClientFrame(bytes: Uint8Array, maxFrameBytes: number = LIMITS.maxFrameBytes, now = Date.now(), crc: Crc32c = portableCrc32c): DecodeResult<ClientFrame> {
  if (bytes.length > maxFrameBytes) return { ok: false, error: new TributaryError('FRAME_TOO_LARGE', `frame of ${bytes.length} bytes exceeds ${maxFrameBytes}`) };
  let raw: unknown;
  let invalidText: boolean;
  try {
    ({ value: raw, invalidText } = decodeCborChecked(bytes));
  } catch (e) {
    return { ok: false, error: new TributaryError('BAD_FRAME', e instanceof TributaryError ? `frame ${e.message}` : 'frame is not valid CBOR') };
  }
  if (!isObj(raw)) return { ok: false, error: new TributaryError('BAD_FRAME', 'frame must be a CBOR map') };
  const id = raw.id;
  const hasId = isUint(id, 2 ** 53 - 1);
  if (raw.t !== 'credit' && !hasId) return { ok: false, error: new TributaryError('BAD_FRAME', 'request frames need a numeric id') };
  if (invalidText) {
    const error = invalidTextError(raw);
    return hasId ? { ok: false, error, id: id as number } : { ok: false, error };
  }
  try {
    return { ok: true, frame: parse(raw, hasId ? (id as number) : 0, now, crc) };
  } catch (e) {
    const error = e instanceof TributaryError ? e : new TributaryError('BAD_FRAME', 'malformed frame');
    return hasId ? { ok: false, error, id: id as number } : { ok: false, error };
  }
}

/** Decodes a frame from the hub (clients trust the hub's shape less strictly, but never crash on it). */
export function decodeServerFrame(bytes: Uint8Array): DecodeResult<import('./frames.ts').ServerFrame> {
  let raw: unknown;
  try {
    raw = decodeCbor(bytes);
  } catch {
    return { ok: false, error: new TributaryError('BAD_FRAME', 'hub frame is not valid CBOR') };
  }
  if (!isObj(raw) || typeof raw.t !== 'string') return { ok: false, error: new TributaryError('BAD_FRAME', 'hub frame must be a map with t') };
  switch (raw.t) {
    case 'ok':
    case 'ack':
    case 'error':
      if (raw.t !== 'error' && !isUint(raw.id)) break;
      if (raw.t === 'ack' && !Array.isArray(raw.parts)) break;
      return { ok: true, frame: raw as never };
    case 'records':
      if (!isUint(raw.sub) || !isUint(raw.p) || !isBytes(raw.b) || !isUint(raw.hw)) break;
      return { ok: true, frame: raw as never };
    case 'assignment':
      if (!isUint(raw.sub) || !isUint(raw.generation) || !Array.isArray(raw.partitions) || !raw.partitions.every((p) => isUint(p)) || !isObj(raw.positions)) break;
      return { ok: true, frame: raw as never };
  }
  return { ok: false, error: new TributaryError('BAD_FRAME', `unexpected hub frame ${String(raw.t).slice(0, 20)}`) };
}
