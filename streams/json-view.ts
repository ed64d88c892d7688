/**
 * A read-only view of a JSON object as it is stored: `from(topic, { values:
 * 'view' })` hands each record's value as one, and a top-level field is
 * decoded from the stored bytes when it is read, not the whole object up
 * front. A filter that reads one field of a ~100-byte event costs one short
 * scan instead of a JSON.parse of the event and the garbage of its strings.
 *
 * What stays as with a decoded object: reading fields (including missing
 * ones and Object.prototype's), `in`, Object.keys, spreading, for…in,
 * JSON.stringify; a field is what JSON.parse gives (the last of duplicate
 * keys). Anything but a plain field read (keys, `in`, descriptors, a field
 * that is an object or array or a string with escapes) decodes the whole
 * value once (JSON.parse) and answers from that. What differs: the view is
 * read-only (assignments throw), it is a Proxy (structuredClone and
 * IndexedDB refuse it: copy it first, `{ ...r.value }`), and a value that
 * is not valid JSON throws StreamsError VALUE_NOT_JSON when a malformed part
 * is read (a plain decode hands such a value over as its bytes instead).
 */
import { StreamsError } from './errors.ts';
import { ForwardingRec } from './forwarding-rec.ts';

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** The Proxy's target: the stored bytes and, once something needed it, the whole decoded value. */
interface ViewState {
  readonly b: Uint8Array;
  /** The fields' offsets (index()), once a field was read; null: not indexable. */
  idx: number[] | null | undefined;
  full: Record<string, unknown> | undefined;
}

/** A field the scan could not answer by itself: the whole value is decoded. */
const WHOLE = Symbol('whole');
/** A field not among the object's own. */
const ABSENT = Symbol('absent');

function isSpace(c: number): boolean {
  return c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
}

function whole(t: ViewState): Record<string, unknown> {
  if (t.full === undefined) {
    let v: unknown;
    try {
      v = JSON.parse(utf8.decode(t.b));
    } catch (err) {
      throw new StreamsError('VALUE_NOT_JSON', `a value read as a JSON view is not JSON: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    }
    if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new StreamsError('VALUE_NOT_JSON', 'a value read as a JSON view is not a JSON object');
    t.full = v as Record<string, unknown>;
  }
  return t.full;
}

/** End of the string starting at b[i] (a quote): the index after its closing quote, negated when it has an escape or a byte that is not printable ASCII; 0 if unterminated. */
function stringEnd(b: Uint8Array, i: number, e: number): number {
  let plain = true;
  for (i++; i < e; i++) {
    const c = b[i];
    if (c === 0x22) return plain ? i + 1 : -(i + 1);
    if (c === 0x5c) {
      plain = false;
      i++;
    } else if (c < 0x20 || c > 0x7e) plain = false;
  }
  return 0;
}

/** End of the nested object or array starting at b[i] (brackets balanced, strings skipped), or -1. */
function nestedEnd(b: Uint8Array, i: number, e: number): number {
  let depth = 0;
  for (; i < e; i++) {
    const c = b[i];
    if (c === 0x22) {
      const end = stringEnd(b, i, e);
      if (end === 0) return -1;
      i = Math.abs(end) - 1;
    } else if (c === 0x7b || c === 0x5b) depth++;
    else if (c === 0x7d || c === 0x5d) {
      if (--depth === 0) return i + 1;
    }
  }
  return -1;
}

/** End of a JSON number at b[i] (its grammar, RFC 8259 section 6), or -1. */
function numberEnd(b: Uint8Array, i: number, e: number): number {
  if (b[i] === 0x2d) i++;
  if (i >= e) return -1;
  if (b[i] === 0x30) i++;
  else if (b[i] >= 0x31 && b[i] <= 0x39) while (i < e && b[i] >= 0x30 && b[i] <= 0x39) i++;
  else return -1;
  if (b[i] === 0x2e) {
    const d = ++i;
    while (i < e && b[i] >= 0x30 && b[i] <= 0x39) i++;
    if (i === d) return -1;
  }
  if (b[i] === 0x65 || b[i] === 0x45) {
    i++;
    if (b[i] === 0x2b || b[i] === 0x2d) i++;
    const d = i;
    while (i < e && b[i] >= 0x30 && b[i] <= 0x39) i++;
    if (i === d) return -1;
  }
  return i;
}

function latin(b: Uint8Array, s: number, e: number): string {
  let out = '';
  for (let i = s; i < e; i++) out += String.fromCharCode(b[i]);
  return out;
}

function literalAt(b: Uint8Array, i: number, word: string): boolean {
  for (let k = 0; k < word.length; k++) if (b[i + k] !== word.charCodeAt(k)) return false;
  return true;
}

/** The number, literal or nested value at b[s, end): a primitive, or WHOLE when it needs JSON.parse. */
function primitive(b: Uint8Array, s: number, end: number): unknown {
  const c = b[s];
  if (c === 0x74) return true;
  if (c === 0x66) return false;
  if (c === 0x6e) return null;
  if (c === 0x7b || c === 0x5b) return WHOLE;
  // Integers of up to 15 digits are exact as they are summed; others go through Number's own conversion.
  let n = 0;
  let i = s;
  const neg = b[i] === 0x2d;
  if (neg) i++;
  if (end - i <= 15) {
    for (; i < end; i++) {
      const d = b[i] - 0x30;
      if (d < 0 || d > 9) return Number(latin(b, s, end));
      n = n * 10 + d;
    }
    return neg ? -n : n;
  }
  return Number(latin(b, s, end));
}

/**
 * The top-level fields of the JSON object in b, as [key start, key end,
 * value start, value end] per field (the key's bytes without its quotes; a
 * key with an escape or a byte that is not printable ASCII gets key start
 * -1: it never matches, so a read of it decodes the whole value); null when
 * the bytes do not follow the grammar at the top level (JSON.parse then
 * decides). One pass per view, at its first field read.
 */
function index(b: Uint8Array): number[] | null {
  const e = b.length;
  const out: number[] = [];
  let i = 0;
  while (i < e && isSpace(b[i])) i++;
  if (b[i++] !== 0x7b) return null;
  while (i < e && isSpace(b[i])) i++;
  if (b[i] === 0x7d) i++;
  else {
    for (;;) {
      if (b[i] !== 0x22) return null;
      const keyEnd = stringEnd(b, i, e);
      if (keyEnd === 0) return null;
      const ks = keyEnd > 0 ? i + 1 : -1;
      const ke = Math.abs(keyEnd) - 1;
      i = ke + 1;
      while (i < e && isSpace(b[i])) i++;
      if (b[i++] !== 0x3a) return null;
      while (i < e && isSpace(b[i])) i++;
      const s = i;
      const c = b[i];
      if (c === 0x22) {
        const end = stringEnd(b, i, e);
        if (end === 0) return null;
        i = Math.abs(end);
      } else if (c === 0x7b || c === 0x5b) {
        i = nestedEnd(b, i, e);
        if (i < 0) return null;
      } else if (c === 0x74 || c === 0x66 || c === 0x6e) {
        const word = c === 0x74 ? 'true' : c === 0x66 ? 'false' : 'null';
        if (!literalAt(b, i, word)) return null;
        i += word.length;
      } else {
        i = numberEnd(b, i, e);
        if (i < 0) return null;
      }
      out.push(ks, ke, s, i);
      while (i < e && isSpace(b[i])) i++;
      if (b[i] === 0x2c) {
        i++;
        while (i < e && isSpace(b[i])) i++;
        continue;
      }
      if (b[i++] !== 0x7d) return null;
      break;
    }
  }
  while (i < e && isSpace(b[i])) i++;
  return i === e ? out : null;
}

/** The own field `name` (the last of duplicates, as JSON.parse keeps), ABSENT, or WHOLE when the index cannot answer it. */
function field(t: ViewState, name: string): unknown {
  const b = t.b;
  let idx = t.idx;
  if (idx === undefined) idx = t.idx = index(b);
  if (idx === null) return WHOLE;
  const nl = name.length;
  for (let f = idx.length - 4; f >= 0; f -= 4) {
    const ks = idx[f];
    // A key the index cannot compare, at or after the last match so far: it may be the name.
    if (ks < 0) return WHOLE;
    if (idx[f + 1] - ks !== nl) continue;
    let k = 0;
    while (k < nl && b[ks + k] === name.charCodeAt(k)) k++;
    if (k === nl) {
      const vs = idx[f + 2];
      const ve = idx[f + 3];
      return b[vs] === 0x22 ? (stringEnd(b, vs, ve) > 0 ? latin(b, vs + 1, ve - 1) : WHOLE) : primitive(b, vs, ve);
    }
  }
  // Every key is printable ASCII without escapes: a name with other chars matches none of them.
  return ABSENT;
}

const objectProto = Object.prototype as unknown as Record<string | symbol, unknown>;

function readOnly(): never {
  throw new StreamsError('VALUE_READ_ONLY', "a value read with { values: 'view' } is read-only: copy it ({ ...r.value }) to change it");
}

const handler: ProxyHandler<ViewState> = {
  get(t, p) {
    if (t.full !== undefined) return t.full[p as string];
    if (typeof p !== 'string' || p === '__proto__') return typeof p === 'string' ? whole(t)[p] : objectProto[p];
    const v = field(t, p);
    if (v === WHOLE) return whole(t)[p];
    return v === ABSENT ? objectProto[p] : v;
  },
  has: (t, p) => p in whole(t),
  ownKeys: (t) => Reflect.ownKeys(whole(t)),
  getOwnPropertyDescriptor(t, p) {
    const d = Reflect.getOwnPropertyDescriptor(whole(t), p);
    // Reported configurable: the target does not hold the field, and a proxy may not report a non-configurable one it lacks.
    return d && { value: d.value, writable: false, enumerable: d.enumerable, configurable: true };
  },
  getPrototypeOf: () => Object.prototype,
  set: readOnly,
  deleteProperty: readOnly,
  defineProperty: readOnly,
  setPrototypeOf: readOnly,
  preventExtensions: readOnly,
};

/** Whether stored JSON bytes are an object (first byte that is not white space is `{`): only those are viewed. */
function isJsonObject(b: Uint8Array): boolean {
  for (let i = 0; i < b.length; i++) {
    const c = b[i];
    if (!isSpace(c)) return c === 0x7b;
  }
  return false;
}

/** A read-only view of the JSON object in `bytes` (see the file's comment). */
export function jsonView(bytes: Uint8Array): Record<string, unknown> {
  const state: ViewState = { b: bytes, idx: undefined, full: undefined };
  return new Proxy(state, handler) as unknown as Record<string, unknown>;
}

/** Not looked at yet. */
const UNSET = Symbol('unset');

/** A source record whose value is read as a view (a JSON object) or decoded as usual (anything else); its stored bytes pass on unchanged. */
export class ViewedRec extends ForwardingRec {
  #value: unknown = UNSET;
  override get value(): unknown {
    if (this.#value === UNSET) {
      const b = this.valueBytes;
      this.#value = b && this.valueEncoding === 'json' && isJsonObject(b) ? jsonView(b) : super.value;
    }
    return this.#value;
  }
}
