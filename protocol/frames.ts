/**
 * WebSocket frames: one CBOR map per binary message, `{ t: type, id?, ... }`.
 * Every request (a frame with `id`) gets exactly one reply: `ok`, `ack` or
 * `error` with the same id. docs/protocol.md is the prose version of this file.
 *
 * Naming: the field `sub` in these frames is a subscription id (the id of the
 * subscribe request). The code calls it `subId` everywhere off the wire, and
 * `subject` is the JWT `sub` claim (a token's subject), as in server/auth.
 */
import type { EncodedRecord, EncodingCode, Header } from './record.ts';
import type { ErrorCode } from './errors.ts';

export const PROTOCOL_VERSION = 1;
/** Sec-WebSocket-Protocol the hub speaks; a token may ride beside it as `bearer.<JWT>`. */
export const WS_SUBPROTOCOL = 'tributary.v1';

/** Value encodings on the wire: 0 bytes, 1 json (UTF-8 JSON text), 2 cbor. */
export type WireEncoding = EncodingCode;

/** A record as a producer sends it. */
export interface WireRecord {
  /** key: UTF-8 string, bytes, or absent/null */
  k?: string | Uint8Array | null;
  /** value bytes, or null for a tombstone */
  v: Uint8Array | null;
  /** value encoding, default 0 (bytes) */
  e?: WireEncoding;
  /** headers */
  h?: Header[];
  /** event time, ms since the epoch; the hub stamps its clock when absent */
  ts?: number;
  /** explicit partition; otherwise the key's, or spread for null keys */
  p?: number;
}

export type StartPosition = 'earliest' | 'latest' | { offset: number } | { timestamp: number };

// ---------- client → hub ----------

export interface HelloFrame {
  t: 'hello';
  id: number;
  v: number;
  client?: string;
  token?: string;
}
export interface AuthFrame {
  t: 'auth';
  id: number;
  token: string;
}
/**
 * A produce frame as it travels, in one of two forms:
 * - `records` in wire form: the hub picks partitions, numbers the records
 *   `seq + i` and encodes the batches;
 * - `batches`: record batches the producer encoded itself (protocol/batch.ts,
 *   producer id and sequences in each batch's header), each for a partition
 *   it chose. The hub checks each one whole (CRC, every record, limits) and
 *   stores it as it is: the batch on the wire is the batch on disk.
 */
export type ProduceWireFrame =
  { t: 'produce'; id: number; topic: string; pid?: string; seq?: number; records: WireRecord[] } | { t: 'produce'; id: number; topic: string; batches: Array<{ p: number; b: Uint8Array }> };

/** A producer-encoded batch after the hub's decoder checked it. `batch` is a view into the frame. */
export interface ProducedBatch {
  partition: number;
  batch: Uint8Array;
  recordCount: number;
  producerId: string;
  /** -1 when the producer has no id. */
  baseSequence: number;
  lastSequence: number;
  maxTimestamp: number;
}

/** A produce frame in batch form after the hub's decoder. Its ack has one part per batch, in order. */
export interface ProduceBatchesFrame {
  t: 'produce';
  id: number;
  topic: string;
  batches: ProducedBatch[];
  records?: undefined;
}
/** A produce frame after the hub's decoder: records validated into the record model. */
export interface ProduceFrame {
  t: 'produce';
  id: number;
  topic: string;
  /** producer id: stable across reconnects and reloads; enables idempotence */
  pid?: string;
  /** sequence of the first record; record i has seq + i (counted per producer across the topic) */
  seq?: number;
  records: Array<EncodedRecord & { partition?: number }>;
  batches?: undefined;
}
export interface SubscribeFrame {
  t: 'subscribe';
  id: number;
  topic: string;
  from: StartPosition;
  partitions?: number[];
  /** next offset to deliver per partition, overriding `from` (resume after reconnect) */
  positions?: Record<string, number>;
  group?: string;
  /** Group members only: the member id the hub gave earlier, to keep membership (and partitions) across a reconnect. */
  member?: string;
  /** initial credit in bytes of batches the hub may send before the next `credit` */
  credit?: number;
  onOutOfRange?: 'earliest' | 'latest' | 'error';
}
export interface CreditFrame {
  t: 'credit';
  sub: number;
  bytes: number;
}
export interface UnsubscribeFrame {
  t: 'unsubscribe';
  id: number;
  sub: number;
}
/**
 * Commits the next offset to process per partition. From a member (`member`,
 * `generation`), refused with FENCED unless it is live and owns the
 * partitions; without `member` (tools) only while the group has no members.
 */
export interface CommitFrame {
  t: 'commit';
  id: number;
  group: string;
  topic: string;
  offsets: Array<[partition: number, offset: number]>;
  member?: string;
  generation?: number;
}
/** A group member is alive (every heartbeatIntervalMs). */
export interface HeartbeatFrame {
  t: 'heartbeat';
  id: number;
  sub: number;
}
/** A group member gave up the partitions an assignment of `generation` took away (cooperative revocation). */
export interface ConfirmFrame {
  t: 'confirm';
  id: number;
  sub: number;
  generation: number;
}
export interface MetadataFrame {
  t: 'metadata';
  id: number;
  topic: string;
}
export interface PingFrame {
  t: 'ping';
  id: number;
}

export type ClientFrame =
  HelloFrame | AuthFrame | ProduceFrame | ProduceBatchesFrame | SubscribeFrame | CreditFrame | UnsubscribeFrame | CommitFrame | HeartbeatFrame | ConfirmFrame | MetadataFrame | PingFrame;

// ---------- hub → client ----------

export interface OkFrame {
  t: 'ok';
  id: number;
  [field: string]: unknown;
}
/**
 * Where each record of a produce request landed, compact: one part per
 * partition. Record r[k] of the request (all records in order when `r` is
 * absent) has offset `offs[k]` when `offs` is given, else `o + k`. For a
 * request in batch form, part i answers batch i, and its record k has
 * offset `offs[k]` or `o + k`.
 */
export interface AckPart {
  p: number;
  o: number;
  r?: number[];
  offs?: number[];
}
export interface AckFrame {
  t: 'ack';
  id: number;
  parts: AckPart[];
  dup?: boolean;
}
/** Raw stored batches of one partition, laid end to end; skip records below the position you asked for. */
export interface RecordsFrame {
  t: 'records';
  sub: number;
  topic: string;
  p: number;
  b: Uint8Array;
  hw: number;
}
export interface ErrorFrame {
  t: 'error';
  id?: number;
  sub?: number;
  code: ErrorCode;
  message: string;
  retriable: boolean;
  [detail: string]: unknown;
}
/**
 * A group member's complete set of partitions for `generation`, with the
 * offset to start each at (the group's committed offset, else the `from`
 * position). Partitions the member held that are missing are revoked: it
 * finishes their in-flight records, commits, then sends `confirm`.
 */
export interface AssignmentFrame {
  t: 'assignment';
  sub: number;
  group: string;
  generation: number;
  partitions: number[];
  positions: Record<string, number>;
}

export type ServerFrame = OkFrame | AckFrame | RecordsFrame | ErrorFrame | AssignmentFrame;

/** Maps an ack back to each request record's (partition, offset), in request order. */
export function ackOffsets(ack: Pick<AckFrame, 'parts'>, recordCount: number): Array<{ partition: number; offset: number }> {
  const out = new Array<{ partition: number; offset: number }>(recordCount);
  for (const part of ack.parts) {
    const n = part.r ? part.r.length : recordCount;
    for (let k = 0; k < n; k++) {
      const i = part.r ? part.r[k] : k;
      out[i] = { partition: part.p, offset: part.offs ? part.offs[k] : part.o + k };
    }
  }
  return out;
}
