/**
 * Finds named top-level fields of a JSON object value in its stored bytes,
 * without JSON.parse and without a JS object or string per value.
 *
 * Why: the PostgreSQL sink maps `value.FIELD` into columns, and parsing
 * every value to read three fields was ~70% of the sink's CPU per row
 * (the bound of its end-to-end rate). The scanner walks the whole value once,
 * checking it as JSON.parse would, and notes where each wanted field's value
 * lies (the LAST occurrence of a duplicate key, as JSON.parse keeps), so the
 * caller copies its text from the bytes.
 *
 * It accepts only what the general path (the consumer's decode: UTF-8 with
 * fatal errors, nesting at most LIMITS.maxNestingDepth, JSON.parse) decodes to
 * an object; for everything else (not JSON, not UTF-8, too deep, a byte-order
 * mark, a top-level array or scalar) it answers false and the caller takes
 * the general path, so such records come out exactly as before.
 */
import { utf8SequenceEnd } from '../protocol/cbor-scan.ts';
import { LIMITS } from '../protocol/limits.ts';

/** What a found field's value is (kind[j] for field j). */
export const ABSENT = 0;
/** A string with no escapes: start/end are its content (inside the quotes). */
export const PLAIN_STRING = 1;
/** A string with escapes: start/end include the quotes. */
export const ESCAPED_STRING = 2;
/** A number whose text is what String(Number(text)) prints: copied as it is. */
export const CANONICAL_NUMBER = 3;
/** Any other number (exponent, trailing zeros, -0, more than 15 digits): printed through Number(). */
export const NUMBER = 4;
export const TRUE = 5;
export const FALSE = 6;
export const NULL = 7;
/** An object or array: start/end are its text. */
export const NESTED = 8;

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Set by scanString: whether the string just scanned had a backslash. */
let escaped = false;
/** Set by scanNumber: whether the number's text prints back unchanged. */
let canonical = false;

function ws(b: Uint8Array, i: number, e: number): number {
  while (i < e) {
    const c = b[i];
    if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) break;
    i++;
  }
  return i;
}

const isHex = (c: number): boolean => (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66);

/** b[i] is a quote: the index after the closing quote, or -1 (a control character, a bad escape, bad UTF-8, no end). */
function scanString(b: Uint8Array, i: number, e: number): number {
  escaped = false;
  i++;
  while (i < e) {
    const c = b[i];
    if (c === 0x22) return i + 1;
    if (c < 0x20) return -1;
    if (c === 0x5c) {
      escaped = true;
      if (i + 1 >= e) return -1;
      const x = b[i + 1];
      if (x === 0x75) {
        if (i + 5 >= e || !isHex(b[i + 2]) || !isHex(b[i + 3]) || !isHex(b[i + 4]) || !isHex(b[i + 5])) return -1;
        i += 6;
      } else if (x === 0x22 || x === 0x5c || x === 0x2f || x === 0x62 || x === 0x66 || x === 0x6e || x === 0x72 || x === 0x74) i += 2;
      else return -1;
      continue;
    }
    if (c < 0x80) {
      i++;
      continue;
    }
    // UTF-8 as TextDecoder's fatal mode checks it (RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF).
    i = utf8SequenceEnd(b, i, e);
    if (i < 0) return -1;
  }
  return -1;
}

/** Digits of a number that fit a double exactly and print back as written (DBL_DIG). */
const MAX_CANONICAL_DIGITS = 15;
/**
 * Zeros after "0." that Number's toString still prints in fixed notation
 * (0.000001 prints as written, 0.0000001 as 1e-7).
 */
const MAX_LEADING_FRACTION_ZEROS = 5;

/** b[i] starts a number ('-' or a digit): the index after it, or -1 (JSON's grammar). Sets `canonical`. */
function scanNumber(b: Uint8Array, i: number, e: number): number {
  const start = i;
  if (b[i] === 0x2d) i++;
  if (i >= e) return -1;
  let digits = 0;
  const intZero = b[i] === 0x30;
  if (intZero) {
    i++;
    digits++;
  } else if (b[i] >= 0x31 && b[i] <= 0x39) {
    while (i < e && b[i] >= 0x30 && b[i] <= 0x39) (i++, digits++);
  } else return -1;
  let ok = !(intZero && b[start] === 0x2d); // -0 prints as 0
  if (i < e && b[i] === 0x2e) {
    i++;
    const f = i;
    while (i < e && b[i] >= 0x30 && b[i] <= 0x39) i++;
    if (i === f) return -1;
    digits += i - f;
    if (b[i - 1] === 0x30) ok = false; // trailing zero: 1.50 prints as 1.5
    if (intZero) {
      let z = f;
      while (z < i && b[z] === 0x30) z++;
      if (z - f > MAX_LEADING_FRACTION_ZEROS) ok = false;
    }
  }
  if (i < e && (b[i] === 0x65 || b[i] === 0x45)) {
    ok = false;
    i++;
    if (i < e && (b[i] === 0x2b || b[i] === 0x2d)) i++;
    const x = i;
    while (i < e && b[i] >= 0x30 && b[i] <= 0x39) i++;
    if (i === x) return -1;
  }
  canonical = ok && digits <= MAX_CANONICAL_DIGITS;
  return i;
}

function literal(b: Uint8Array, i: number, e: number, word: string): number {
  if (i + word.length > e) return -1;
  for (let k = 0; k < word.length; k++) if (b[i + k] !== word.charCodeAt(k)) return -1;
  return i + word.length;
}

/** A JSON value at b[i] (no leading whitespace) at nesting `depth` (its container's): the index after it, or -1. */
function scanValue(b: Uint8Array, i: number, e: number, depth: number): number {
  if (i >= e) return -1;
  const c = b[i];
  if (c === 0x22) return scanString(b, i, e);
  if (c === 0x2d || (c >= 0x30 && c <= 0x39)) return scanNumber(b, i, e);
  if (c === 0x74) return literal(b, i, e, 'true');
  if (c === 0x66) return literal(b, i, e, 'false');
  if (c === 0x6e) return literal(b, i, e, 'null');
  if (c !== 0x7b && c !== 0x5b) return -1;
  if (depth + 1 > LIMITS.maxNestingDepth) return -1;
  const object = c === 0x7b;
  const close = object ? 0x7d : 0x5d;
  i = ws(b, i + 1, e);
  if (i < e && b[i] === close) return i + 1;
  for (;;) {
    if (object) {
      if (i >= e || b[i] !== 0x22) return -1;
      i = scanString(b, i, e);
      if (i < 0) return -1;
      i = ws(b, i, e);
      if (i >= e || b[i] !== 0x3a) return -1;
      i = ws(b, i + 1, e);
    }
    i = scanValue(b, i, e, depth + 1);
    if (i < 0) return -1;
    i = ws(b, i, e);
    if (i >= e) return -1;
    if (b[i] === close) return i + 1;
    if (b[i] !== 0x2c) return -1;
    i = ws(b, i + 1, e);
  }
}

function kindAt(b: Uint8Array, s: number): number {
  const c = b[s];
  if (c === 0x22) return escaped ? ESCAPED_STRING : PLAIN_STRING;
  if (c === 0x74) return TRUE;
  if (c === 0x66) return FALSE;
  if (c === 0x6e) return NULL;
  if (c === 0x7b || c === 0x5b) return NESTED;
  return canonical ? CANONICAL_NUMBER : NUMBER;
}

/**
 * Field names that are not plain own-property lookups on a parsed object
 * (Object.prototype's: `constructor`, `toString`, `__proto__`, …): the
 * general path reads them as it always has.
 */
export function scannable(field: string): boolean {
  return !(field in Object.prototype) && Buffer.from(field, 'utf8').toString('utf8') === field;
}

/** Scans values for a fixed list of top-level fields; results in kind/start/end, per field. */
export class FieldScanner {
  private readonly names: Uint8Array[];
  readonly kind: Uint8Array;
  readonly start: Int32Array;
  readonly end: Int32Array;

  constructor(private readonly fields: string[]) {
    this.names = fields.map((f) => new Uint8Array(Buffer.from(f, 'utf8')));
    this.kind = new Uint8Array(fields.length);
    this.start = new Int32Array(fields.length);
    this.end = new Int32Array(fields.length);
  }

  /** Which field a key (b[s, e) with its quotes) names, or -1. */
  private match(b: Uint8Array, s: number, e: number, keyEscaped: boolean): number {
    if (keyEscaped) {
      const key = JSON.parse(utf8.decode(b.subarray(s, e))) as string;
      return this.fields.indexOf(key);
    }
    const n = e - s - 2;
    outer: for (let j = 0; j < this.names.length; j++) {
      const name = this.names[j];
      if (name.length !== n) continue;
      for (let k = 0; k < n; k++) if (b[s + 1 + k] !== name[k]) continue outer;
      return j;
    }
    return -1;
  }

  /**
   * Whether b[s, e) is a JSON object the general path decodes: then each
   * field's kind, start and end are set (ABSENT when it has none). False:
   * read the value the general way.
   */
  scan(b: Uint8Array, s: number, e: number): boolean {
    this.kind.fill(ABSENT);
    let i = ws(b, s, e);
    if (i >= e || b[i] !== 0x7b) return false;
    i = ws(b, i + 1, e);
    if (i < e && b[i] === 0x7d) return ws(b, i + 1, e) === e;
    for (;;) {
      if (i >= e || b[i] !== 0x22) return false;
      const ks = i;
      i = scanString(b, i, e);
      if (i < 0) return false;
      const field = this.match(b, ks, i, escaped);
      i = ws(b, i, e);
      if (i >= e || b[i] !== 0x3a) return false;
      i = ws(b, i + 1, e);
      const vs = i;
      i = scanValue(b, i, e, 1);
      if (i < 0) return false;
      if (field >= 0) {
        // A later duplicate replaces an earlier one, as in JSON.parse.
        const kind = kindAt(b, vs);
        this.kind[field] = kind;
        this.start[field] = kind === PLAIN_STRING ? vs + 1 : vs;
        this.end[field] = kind === PLAIN_STRING ? i - 1 : i;
      }
      i = ws(b, i, e);
      if (i >= e) return false;
      if (b[i] === 0x7d) return ws(b, i + 1, e) === e;
      if (b[i] !== 0x2c) return false;
      i = ws(b, i + 1, e);
    }
  }
}
