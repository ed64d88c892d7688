/**
 * The records routes' bodies: an HTTP produce body (JSON or CBOR) into a
 * broker produce request, and read results into JSON or CBOR answers.
 *
 * JSON produce records use protocol's JSON record model (recordFromJson);
 * CBOR produce records are wire records, as in a produce frame. Both are then
 * checked by protocol's wire-record parser, the same one the WS path uses.
 */
import { decodeCborChecked } from '../../protocol/codec.ts';
import { TributaryError } from '../../protocol/errors.ts';
import { invalidTextError, parseWireRecord } from '../../protocol/frame-decoder.ts';
import { jsonNestsDeeperThan } from '../../protocol/json-depth.ts';
import { LIMITS } from '../../protocol/limits.ts';
import { fromUtf8, utf8Length, type StoredRecord } from '../../protocol/record.ts';
import { recordFromJson, recordToJson, type JsonProduceBody, type JsonRecordIn } from '../../protocol/values.ts';
import type { ProduceRecord, ProduceRequest } from '../broker/produce.ts';

/** protocol's parsers throw TributaryError; anything else (a JSON.stringify failure) becomes `fallback`. */
function asTributary(err: unknown, fallback: 'BAD_RECORD' | 'BAD_REQUEST'): TributaryError {
  if (err instanceof TributaryError) return err;
  return new TributaryError(fallback, err instanceof Error ? err.message : String(err));
}

/** Parses a JSON or CBOR body into an object; BAD_JSON / BAD_CBOR otherwise. */
export function parseBody(body: Uint8Array, cbor: boolean): Record<string, unknown> {
  let doc: unknown;
  if (cbor) {
    let invalidText: boolean;
    try {
      ({ value: doc, invalidText } = decodeCborChecked(body));
    } catch (err) {
      throw new TributaryError('BAD_CBOR', err instanceof TributaryError ? `body ${err.message}` : 'body is not valid CBOR');
    }
    if (invalidText) {
      // Never stored with the decoder's replacement characters: BAD_RECORD inside a record, BAD_CBOR elsewhere.
      const e = invalidTextError(doc);
      throw e.code === 'BAD_RECORD' ? e : new TributaryError('BAD_CBOR', `body: ${e.message.replace(/^frame: /, '')}`);
    }
  } else {
    let text: string;
    try {
      text = fromUtf8(body);
    } catch {
      throw new TributaryError('BAD_JSON', 'body is not valid UTF-8');
    }
    if (jsonNestsDeeperThan(text, LIMITS.maxNestingDepth)) {
      throw new TributaryError('BAD_JSON', `body is nested deeper than ${LIMITS.maxNestingDepth} levels (arrays and objects; the limit is maxNestingDepth)`);
    }
    try {
      doc = JSON.parse(text);
    } catch {
      throw new TributaryError('BAD_JSON', 'body is not valid JSON');
    }
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc) || doc instanceof Uint8Array) {
    throw new TributaryError(cbor ? 'BAD_CBOR' : 'BAD_JSON', 'body must be an object');
  }
  return doc as Record<string, unknown>;
}

/** `{"records":[...],"producerId"?,"sequence"?}` → a produce request for `topic`. */
export function produceRequestFromBody(topic: string, doc: Record<string, unknown>, cbor: boolean): ProduceRequest {
  const { records: recs, producerId: pid, sequence: seq } = doc as { [K in keyof JsonProduceBody]?: unknown };
  if (!Array.isArray(recs) || recs.length === 0) throw new TributaryError('BAD_RECORD', 'records must be a non-empty array');
  if (recs.length > LIMITS.maxRecordsPerBatch) throw new TributaryError('BATCH_TOO_LARGE', `${recs.length} records exceed the limit of ${LIMITS.maxRecordsPerBatch}`);
  const req: ProduceRequest = { topic, records: new Array<ProduceRecord>(recs.length) };
  if (pid !== undefined && pid !== null) {
    if (typeof pid !== 'string' || pid.length === 0 || utf8Length(pid) > LIMITS.maxProducerIdBytes) {
      throw new TributaryError('BAD_SEQUENCE', `producerId must be a string of 1 to ${LIMITS.maxProducerIdBytes} bytes`);
    }
    if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < 0 || !Number.isSafeInteger(seq + recs.length)) {
      throw new TributaryError('BAD_SEQUENCE', 'sequence must be a non-negative integer when producerId is given');
    }
    req.pid = pid;
    req.seq = seq;
  } else if (seq !== undefined && seq !== null) {
    throw new TributaryError('BAD_SEQUENCE', 'sequence needs producerId');
  }
  const now = Date.now();
  for (let i = 0; i < recs.length; i++) {
    try {
      const wire = cbor ? recs[i] : recordFromJson(recs[i] as JsonRecordIn, i, now);
      req.records[i] = parseWireRecord(wire, i, now);
    } catch (err) {
      throw asTributary(err, 'BAD_RECORD');
    }
  }
  return req;
}

/** A stored record in a CBOR answer: bytes stay bytes, the encoding is named. */
function recordToCbor(r: StoredRecord): Record<string, unknown> {
  return { offset: r.offset, timestamp: r.timestamp, key: r.key, value: r.value, encoding: r.encoding, headers: r.headers };
}

export function recordsAnswer(records: StoredRecord[], nextOffset: number, highWatermark: number, cbor: boolean): Record<string, unknown> {
  return { records: cbor ? records.map(recordToCbor) : records.map(recordToJson), nextOffset, highWatermark };
}

/** A non-negative integer query parameter, or undefined when absent. */
export function queryInt(q: URLSearchParams, name: string, max = Number.MAX_SAFE_INTEGER): number | undefined {
  const v = q.get(name);
  if (v === null || v === '') return undefined;
  if (!/^\d{1,16}$/.test(v) || Number(v) > max) throw new TributaryError('BAD_REQUEST', `${name} must be a non-negative integer${max < Number.MAX_SAFE_INTEGER ? ` up to ${max}` : ''}`);
  return Number(v);
}
