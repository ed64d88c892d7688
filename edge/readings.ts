/**
 * Request bodies → readings. Untrusted bytes are parsed here once, with a
 * limit on everything: body bytes (checked while streaming, before parsing),
 * readings per request, bytes per reading.
 *
 * - JSON (`application/json`, or no content type): an object is one reading,
 *   an array of objects is a batch.
 * - CBOR (`application/cbor`): a map is one reading, an array of maps a batch.
 *   CBOR readings must be JSON-representable (no byte strings, tags, undefined,
 *   non-finite numbers), because every reading is stored as a JSON value:
 *   consumers see the same value whichever encoding the device spoke.
 *
 * A reading comes out as its compact JSON text, ready to be spliced into the
 * hub request without a second serialization.
 */
import { decodeCbor } from '../protocol/codec.ts';
import { TributaryError } from '../protocol/errors.ts';
import { fromUtf8, utf8Length } from '../protocol/record.ts';

export interface ReadingLimits {
  maxBodyBytes: number;
  maxReadingsPerRequest: number;
  maxReadingBytes: number;
}

export type BodyFormat = 'json' | 'cbor';

/** Nesting deeper than this in a CBOR reading is refused (JSON.parse has its own guard). */
const MAX_CBOR_DEPTH = 64;

export function bodyFormatOf(request: Request): BodyFormat {
  const type = request.headers.get('content-type');
  if (type === null) return 'json';
  const mime = type.split(';', 1)[0].trim().toLowerCase();
  if (mime === 'application/json' || (mime.startsWith('application/') && mime.endsWith('+json'))) return 'json';
  if (mime === 'application/cbor') return 'cbor';
  throw new TributaryError('BAD_REQUEST', `unsupported content type ${JSON.stringify(mime)}: send application/json or application/cbor`);
}

/** Reads the whole body, refusing (413) as soon as it passes maxBodyBytes, whatever Content-Length claims. */
export async function readBody(request: Request, maxBodyBytes: number): Promise<Uint8Array> {
  const tooLarge = () => new TributaryError('BODY_TOO_LARGE', `request body larger than ${maxBodyBytes} bytes`);
  const declared = request.headers.get('content-length');
  if (declared !== null && /^\d+$/.test(declared) && Number(declared) > maxBodyBytes) throw tooLarge();
  if (request.body === null) return new Uint8Array(0);
  const reader = request.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > maxBodyBytes) {
      await reader.cancel().catch(() => undefined);
      throw tooLarge();
    }
    chunks.push(value);
  }
  if (chunks.length === 1) return chunks[0];
  const out = new Uint8Array(total);
  let pos = 0;
  for (const c of chunks) {
    out.set(c, pos);
    pos += c.byteLength;
  }
  return out;
}

function isPlainObject(x: unknown): x is Record<string, unknown> {
  if (typeof x !== 'object' || x === null || Array.isArray(x)) return false;
  const proto = Object.getPrototypeOf(x);
  return proto === Object.prototype || proto === null;
}

/** Throws unless a decoded CBOR value is made only of what JSON can say. */
function assertJsonLike(x: unknown, where: string, depth: number): void {
  if (depth > MAX_CBOR_DEPTH) throw new TributaryError('BAD_RECORD', `${where}: nested deeper than ${MAX_CBOR_DEPTH} levels`);
  if (x === null || typeof x === 'string' || typeof x === 'boolean') return;
  if (typeof x === 'number') {
    if (!Number.isFinite(x)) throw new TributaryError('BAD_RECORD', `${where}: NaN and infinities have no JSON form`);
    return;
  }
  if (Array.isArray(x)) {
    for (const item of x) assertJsonLike(item, where, depth + 1);
    return;
  }
  if (isPlainObject(x)) {
    for (const k in x) assertJsonLike(x[k], where, depth + 1);
    return;
  }
  const what = x instanceof Uint8Array ? 'byte strings' : typeof x === 'bigint' ? 'integers beyond 2^53' : x === undefined ? 'undefined' : 'tagged or non-JSON values';
  throw new TributaryError('BAD_RECORD', `${where}: ${what} cannot be stored as a JSON reading`);
}

function decode(body: Uint8Array, format: BodyFormat): unknown {
  if (body.byteLength === 0) throw new TributaryError('BAD_REQUEST', 'empty body: send one reading (an object) or a batch (an array of objects)');
  if (format === 'json') {
    try {
      return JSON.parse(fromUtf8(body));
    } catch {
      throw new TributaryError('BAD_JSON');
    }
  }
  let value: unknown;
  try {
    value = decodeCbor(body);
  } catch {
    throw new TributaryError('BAD_CBOR');
  }
  return value;
}

/** One reading: a JSON object (CBOR readings are checked to be JSON-representable). */
export type Reading = Record<string, unknown>;

/**
 * Parses a body into readings. Throws BAD_JSON /
 * BAD_CBOR / BAD_REQUEST / BAD_RECORD (400) and BATCH_TOO_LARGE /
 * RECORD_TOO_LARGE (413).
 */
export function parseReadings(body: Uint8Array, format: BodyFormat, limits: ReadingLimits): Reading[] {
  const decoded = decode(body, format);
  const items = Array.isArray(decoded) ? decoded : [decoded];
  if (Array.isArray(decoded)) {
    if (items.length === 0) throw new TributaryError('BAD_REQUEST', 'empty batch: send at least one reading');
    if (items.length > limits.maxReadingsPerRequest) {
      throw new TributaryError('BATCH_TOO_LARGE', `${items.length} readings in one request; at most ${limits.maxReadingsPerRequest}`);
    }
  }
  const out = new Array<Reading>(items.length);
  for (let i = 0; i < items.length; i++) {
    const item = items[i];
    const where = Array.isArray(decoded) ? `reading ${i}` : 'reading';
    if (!isPlainObject(item)) throw new TributaryError('BAD_RECORD', `${where} must be an object`);
    if (format === 'cbor') assertJsonLike(item, where, 0);
    const bytes = utf8Length(JSON.stringify(item));
    if (bytes > limits.maxReadingBytes) throw new TributaryError('RECORD_TOO_LARGE', `${where} is ${bytes} bytes as JSON; at most ${limits.maxReadingBytes}`);
    out[i] = item;
  }
  return out;
}
