/**
 * Records → the rows of COPY … FROM STDIN (text format) for the PostgreSQL
 * sink, through the column mapping.
 *
 * Each mapped column gets a kind, chosen once at start from its source and
 * the column's type, that says how a record becomes the column's COPY
 * field: offsets, partitions and timestamps are numbers printed as they are
 * (no escaping to check), a timestamp column gets ISO text, a field of the
 * value its number or escaped string, JSON columns get JSON text, anything
 * else its text escaped. The sink writes tens of
 * thousands of rows per second, so per-value type tests add up: this is the
 * part of a write that runs in our process.
 *
 * Sources: `key`, `value` (the whole value), `value.a.b` (a field of a JSON
 * value), `offset`, `partition`, `timestamp`, `topic`, `header.NAME`.
 *
 * copyRow makes a row from the decoded record (the general path); CopyWriter
 * writes the same row as bytes, reading `value.FIELD` columns from the
 * stored JSON bytes (json-fields.ts) so that the values are never parsed.
 */
import { configError } from './config.ts';
import * as F from './json-fields.ts';
import type { ConsumedRecord, RecordsView } from './task.ts';

type Extract = (r: ConsumedRecord) => unknown;

const NULL = '\\N';

function extractor(source: string, connector: string): Extract {
  if (source === 'key') return (r) => (r.key instanceof Uint8Array ? Buffer.from(r.key).toString('utf8') : r.key);
  if (source === 'value') return (r) => r.value;
  if (source === 'offset') return (r) => r.offset;
  if (source === 'partition') return (r) => r.partition;
  if (source === 'timestamp') return (r) => r.timestamp;
  if (source === 'topic') return (r) => r.topic;
  if (source.startsWith('header.')) {
    const name = source.slice('header.'.length);
    return (r) => {
      const h = r.headers.find(([k]) => k === name);
      return h === undefined ? null : typeof h[1] === 'string' ? h[1] : Buffer.from(h[1]).toString('utf8');
    };
  }
  if (source.startsWith('value.')) {
    const path = source.slice('value.'.length).split('.');
    if (path.length === 1) {
      const [k] = path;
      return (r) => {
        const v = r.value;
        return typeof v === 'object' && v !== null ? ((v as Record<string, unknown>)[k] ?? null) : null;
      };
    }
    return (r) => {
      let v: unknown = r.value;
      for (const k of path) {
        if (typeof v !== 'object' || v === null) return null;
        v = (v as Record<string, unknown>)[k];
      }
      return v ?? null;
    };
  }
  throw configError(`connector ${connector}: unknown column source ${JSON.stringify(source)} (key, value, value.FIELD, offset, partition, timestamp, topic, header.NAME)`);
}

/** COPY's text format: backslash escapes for the characters that delimit rows and columns. */
const SPECIAL = /[\\\n\r\t]/;
function escapeCopy(v: string): string {
  return SPECIAL.test(v) ? v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/\r/g, '\\r').replace(/\t/g, '\\t') : v;
}

/** A value → the COPY field PostgreSQL parses for a column of this kind. */
function textFor(type: string): (v: unknown) => string {
  const json = type === 'json' || type === 'jsonb';
  const timestamp = type.startsWith('timestamp');
  const bytea = type === 'bytea';
  return (v) => {
    if (v === null || v === undefined) return NULL;
    if (json) return escapeCopy(JSON.stringify(v));
    // Finite numbers print without characters COPY would need escaped.
    if (typeof v === 'number') return timestamp ? new Date(v).toISOString() : Number.isFinite(v) ? String(v) : escapeCopy(String(v));
    if (typeof v === 'string') return escapeCopy(v);
    if (v instanceof Uint8Array) return bytea ? `\\\\x${Buffer.from(v).toString('hex')}` : escapeCopy(Buffer.from(v).toString('utf8'));
    if (typeof v === 'object') return escapeCopy(JSON.stringify(v));
    return escapeCopy(String(v));
  };
}

/** How a column's field is made: one switch in copyRow rather than a call through a different closure per column, which V8 cannot inline. */
const OFFSET = 0;
const PARTITION = 1;
const TIMESTAMP_NUMBER = 2;
const TIMESTAMP_ISO = 3;
/** `value.FIELD` into a column that is not JSON or a timestamp: numbers and strings the common case. */
const VALUE_FIELD = 4;
const OTHER = 5;
/**
 * `value` (the whole value) into a json/jsonb column: a JSON value's stored
 * text goes in as it is (escaped for COPY), without JSON.parse and
 * JSON.stringify, when the record carries its bytes (a `lazyValues`
 * subscription). PostgreSQL parses it for the column either way; a text that
 * is not JSON fails the COPY, and the sink writes that batch again by the
 * general path (postgres-sink.ts).
 */
const RAW_JSON = 6;

export interface CopyColumn {
  kind: number;
  /** VALUE_FIELD: the field. */
  field: string;
  /** OTHER and VALUE_FIELD's uncommon values: the general path. */
  extract: Extract;
  text: (v: unknown) => string;
}

/** How one mapped column becomes its COPY field, chosen from its source and type. */
export function copyColumn(source: string, type: string, connector: string): CopyColumn {
  const timestamp = type.startsWith('timestamp');
  const json = type === 'json' || type === 'jsonb';
  const extract = extractor(source, connector);
  const text = textFor(type);
  let kind = OTHER;
  if (!timestamp && !json && source === 'offset') kind = OFFSET;
  else if (!timestamp && !json && source === 'partition') kind = PARTITION;
  else if (!timestamp && !json && source === 'timestamp') kind = TIMESTAMP_NUMBER;
  else if (timestamp && source === 'timestamp') kind = TIMESTAMP_ISO;
  else if (!timestamp && !json && /^value\.[^.]+$/.test(source)) kind = VALUE_FIELD;
  else if (json && source === 'value') kind = RAW_JSON;
  return { kind, field: kind === VALUE_FIELD ? source.slice('value.'.length) : '', extract, text };
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Whether `columns` write some value's stored JSON text as it is (see RAW_JSON). */
export function writesRawJson(columns: CopyColumn[]): boolean {
  return columns.some((c) => c.kind === RAW_JSON);
}

/** One column's COPY field of a record; `raw`: RAW_JSON columns may take the stored text. */
function copyField(c: CopyColumn, r: ConsumedRecord, raw: boolean): string {
  switch (c.kind) {
    case RAW_JSON: {
      const bytes = raw && r.valueEncoding === 'json' ? r.valueBytes : undefined;
      if (bytes) {
        let text: string | undefined;
        try {
          text = utf8.decode(bytes);
        } catch {
          text = undefined; // not UTF-8: the general path hands it over as the decoder does
        }
        if (text !== undefined) return escapeCopy(text);
      }
      return c.text(c.extract(r));
    }
    case OFFSET:
      return String(r.offset);
    case PARTITION:
      return String(r.partition);
    case TIMESTAMP_NUMBER:
      return String(r.timestamp);
    case TIMESTAMP_ISO:
      return new Date(r.timestamp).toISOString();
    case VALUE_FIELD: {
      const value = r.value;
      const v = typeof value === 'object' && value !== null ? (value as Record<string, unknown>)[c.field] : null;
      if (typeof v === 'number' && Number.isFinite(v)) return String(v);
      if (typeof v === 'string') return escapeCopy(v);
      return c.text(v);
    }
    default:
      return c.text(c.extract(r));
  }
}

/**
 * A record's COPY row (fields joined by tabs, no newline) as a string, by the
 * general path (values decoded); `raw` as for copyField (default true).
 * CopyWriter writes the same bytes.
 */
export function copyRow(columns: CopyColumn[], r: ConsumedRecord, raw = true): string {
  let row = copyField(columns[0], r, raw);
  for (let i = 1; i < columns.length; i++) row += '\t' + copyField(columns[i], r, raw);
  return row;
}

/** Bytes a CopyWriter starts with (and takes anew after each take()). */
const WRITER_START_BYTES = 320 * 1024;
/** Fields shorter than this are copied byte by byte rather than through a subarray and set(). */
const SHORT_FIELD_BYTES = 64;
/** Most bytes a field of a fixed kind takes (a safe integer's 16 digits, a tab), reserved per column of a row. */
const MAX_FIXED_FIELD_BYTES = 24;
const TAB = 0x09;
const NEWLINE = 0x0a;

/**
 * Writes records' COPY rows as bytes, the same bytes as copyRow's text in
 * UTF-8, without a string per row. The `value.FIELD` columns of a record
 * whose stored value is JSON are read from the value's bytes by one
 * FieldScanner pass (json-fields.ts): a number or a string without escapes
 * is copied as it is stored (it needs no COPY escaping: JSON strings hold no
 * raw tab, newline or backslash), so the value is never parsed. A record the
 * scanner does not take (not a JSON object, not JSON at all, too deep, CBOR,
 * a plain object record without bytes) takes copyRow's general path, whose
 * decoder hands a value that is not JSON over as bytes (its fields then
 * come out as \N, as before).
 */
export class CopyWriter {
  private buf = Buffer.allocUnsafe(WRITER_START_BYTES);
  private len = 0;
  /** Bytes before this were handed out by unsent() (or take()). */
  private sent = 0;
  /** Bytes the row being written may still take (row()). */
  private reserve = 0;
  private readonly scanner: F.FieldScanner | null;
  /** Per column: its field's index in the scanner, or -1 (the general path). */
  private readonly scanIndex: number[];

  constructor(private readonly columns: CopyColumn[]) {
    const fields: string[] = [];
    this.scanIndex = columns.map((c) => {
      if (c.kind !== VALUE_FIELD || !F.scannable(c.field)) return -1;
      const at = fields.indexOf(c.field);
      return at >= 0 ? at : fields.push(c.field) - 1;
    });
    this.scanner = fields.length ? new F.FieldScanner(fields) : null;
  }

  /** Bytes written since the last take() or reset(). */
  get length(): number {
    return this.len;
  }

  reset(): void {
    this.len = 0;
    this.sent = 0;
  }

  /** Bytes not yet handed out since the last unsent() or take(), as a view: rows written later do not move them. */
  unsent(): Buffer {
    const out = this.buf.subarray(this.sent, this.len);
    this.sent = this.len;
    return out;
  }

  /** Bytes written and not yet handed out by unsent(). */
  get unsentLength(): number {
    return this.len - this.sent;
  }

  /** The bytes written so far; the writer goes on in a new buffer (the stream may still hold this one). */
  take(): Buffer {
    const out = this.buf.subarray(0, this.len);
    this.buf = Buffer.allocUnsafe(Math.max(WRITER_START_BYTES, this.len));
    this.len = 0;
    this.sent = 0;
    return out;
  }

  /**
   * The row of record i of `v` and its newline; `raw` as for copyRow. Read
   * from the view's columns and bytes: a record object is made only for a
   * column the fast kinds do not cover (the general path).
   */
  row(v: RecordsView, i: number, raw: boolean): void {
    let scanned = false;
    const scanner = this.scanner;
    const b = v.bytes;
    const columns = this.columns;
    let valueBytes = 0;
    if (scanner && v.valueEncoding(i) === 'json') {
      const s = v.valueStart(i);
      if (s >= 0) {
        const e = v.valueEnd(i);
        scanned = scanner.scan(b, s, e);
        valueBytes = e - s;
      }
    }
    // Room for the whole row at once, so that the tabs, digits and copied fields below need no check each: the
    // scanned fields copied as stored are parts of the value; a field written as text reserves its own room and this.
    this.reserve = valueBytes + columns.length * MAX_FIXED_FIELD_BYTES + 1;
    this.ensure(this.reserve);
    let record: ConsumedRecord | null = null;
    for (let c = 0; c < columns.length; c++) {
      if (c > 0) this.buf[this.len++] = TAB;
      const col = columns[c];
      switch (col.kind) {
        case OFFSET:
          this.int(v.offset(i));
          break;
        case PARTITION:
          this.int(v.partition);
          break;
        case TIMESTAMP_NUMBER:
          this.int(v.timestamp(i));
          break;
        case VALUE_FIELD: {
          const j = this.scanIndex[c];
          if (j >= 0 && scanned) this.field(scanner!, b, j);
          else this.text(copyField(col, (record ??= v.record(i)), raw));
          break;
        }
        default:
          this.text(copyField(col, (record ??= v.record(i)), raw));
      }
    }
    this.buf[this.len++] = NEWLINE;
    // A typed array drops writes past its end without a word: a wrong reserve must fail loudly, not lose bytes.
    if (this.len > this.buf.length) throw new Error(`CopyWriter: row overran its reserve of ${this.reserve} bytes`);
  }

  /** The key row of record i of `v` as a string (one char per byte), for telling keys apart. */
  key(v: RecordsView, i: number): string {
    this.len = 0;
    this.row(v, i, true);
    return this.buf.toString('latin1', 0, this.len);
  }

  /** A scanned field's COPY text: what copyField makes of the parsed value. */
  private field(sc: F.FieldScanner, b: Uint8Array, j: number): void {
    const s = sc.start[j];
    const e = sc.end[j];
    switch (sc.kind[j]) {
      case F.PLAIN_STRING:
      case F.CANONICAL_NUMBER:
        this.copy(b, s, e);
        return;
      case F.NUMBER:
        this.text(String(Number(Buffer.from(b.buffer, b.byteOffset + s, e - s).toString('latin1'))));
        return;
      case F.TRUE:
        this.text('true');
        return;
      case F.FALSE:
        this.text('false');
        return;
      case F.ESCAPED_STRING:
        this.text(escapeCopy(JSON.parse(utf8.decode(b.subarray(s, e))) as string));
        return;
      case F.NESTED:
        this.text(escapeCopy(JSON.stringify(JSON.parse(utf8.decode(b.subarray(s, e))))));
        return;
      case F.ABSENT:
      case F.NULL:
      default:
        this.text(NULL);
    }
  }

  private ensure(n: number): void {
    if (this.len + n <= this.buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.len + n));
    this.buf.copy(next, 0, 0, this.len);
    this.buf = next;
  }

  /** b[s, e): part of the row's value, within the row's reserve. */
  private copy(b: Uint8Array, s: number, e: number): void {
    const buf = this.buf;
    let o = this.len;
    if (e - s < SHORT_FIELD_BYTES) for (let k = s; k < e; k++) buf[o++] = b[k];
    else buf.set(b.subarray(s, e), o);
    this.len += e - s;
  }

  private text(t: string): void {
    this.ensure(t.length * 3 + this.reserve);
    this.len += this.buf.write(t, this.len, 'utf8');
  }

  /** A non-negative safe integer's digits without a string, within the row's reserve; anything else as String() prints it. */
  private int(n: number): void {
    if (!(Number.isSafeInteger(n) && n >= 0)) return this.text(String(n));
    const buf = this.buf;
    if (n < 10) {
      buf[this.len++] = 0x30 + n;
      return;
    }
    let digits = 2;
    for (let t = 100; n >= t; t *= 10) digits++;
    let o = this.len + digits;
    this.len = o;
    // Integer division while n fits 31 bits (offsets mostly do), Math.floor above.
    while (n > 0x7fffffff) {
      const q = Math.floor(n / 10);
      buf[--o] = 0x30 + (n - q * 10);
      n = q;
    }
    do {
      const q = (n / 10) | 0;
      buf[--o] = 0x30 + (n - q * 10);
      n = q;
    } while (n > 0);
  }
}
