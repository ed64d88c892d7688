/**
 * Records → the rows of COPY … FROM STDIN (text format) for the PostgreSQL
 * sink, through the column mapping.
 *
 * Each mapped column gets one function, chosen once at start from its
 * source and the column's type, that turns a record into the column's COPY
 * field: offsets, partitions and timestamps are numbers printed as they are
 * (no escaping to check), a timestamp column gets ISO text, JSON columns get
 * JSON text, everything else its text escaped. The sink writes tens of
 * thousands of rows per second, so per-value type tests add up: this is the
 * part of a write that runs in our process.
 *
 * Sources: `key`, `value` (the whole value), `value.a.b` (a field of a JSON
 * value), `offset`, `partition`, `timestamp`, `topic`, `header.NAME`.
 */
import { configError } from './config.ts';
import type { ConsumedRecord } from './task.ts';

/** A record → one COPY field (escaped text, or \N for NULL). */
export type CopyField = (r: ConsumedRecord) => string;

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
export function escapeCopy(v: string): string {
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

/** The COPY field of one mapped column. */
export function copyField(source: string, type: string, connector: string): CopyField {
  const timestamp = type.startsWith('timestamp');
  const numeric = !timestamp && type !== 'json' && type !== 'jsonb';
  // Record positions are integers: printed as they are.
  if (numeric && source === 'offset') return (r) => String(r.offset);
  if (numeric && source === 'partition') return (r) => String(r.partition);
  if (numeric && source === 'timestamp') return (r) => String(r.timestamp);
  if (timestamp && source === 'timestamp') return (r) => new Date(r.timestamp).toISOString();
  const extract = extractor(source, connector);
  const text = textFor(type);
  return (r) => text(extract(r));
}
