/**
 * The PostgreSQL sink's COPY rows from the stored value bytes (CopyWriter,
 * its FieldScanner) are byte for byte the rows the general path makes from
 * the decoded values (copyRow over `record.value`), for any JSON: numbers in
 * every form, strings with escapes and non-ASCII, null, nested values,
 * duplicate keys (the last one counts), escaped keys, and values that are
 * not JSON, not UTF-8 or nested too deep (those take the general path). The
 * records are the web client's own lazy records, read from real batches.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { encodeBatch, readLazyRecords, stampBatch, type EncodedRecord } from '../../protocol/index.ts';
import { LazyRecord } from '../../web-client/consumer.ts';
import { RecordsView } from '../../web-client/records-view.ts';
import { copyColumn, copyRow, CopyWriter } from '../../connectors/postgres-copy-rows.ts';
import { FieldScanner } from '../../connectors/json-fields.ts';

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);

const arbWs = fc.constantFrom('', '', ' ', '\n', '\t ', '\r\n');
const arbNumber = fc.oneof(
  fc.integer().map(String),
  fc.double({ noNaN: true, noDefaultInfinity: true }).map(String),
  fc.double({ noNaN: true, noDefaultInfinity: true }).map((d) => d.toExponential()),
  fc.tuple(fc.integer({ min: -999, max: 999 }), fc.nat(99999), fc.nat(3)).map(([i, f, z]) => `${i}.${'0'.repeat(z)}${f}`),
  fc.constantFrom(
    '-0',
    '0',
    '0.0',
    '1.50',
    '1e2',
    '1E+2',
    '-1e-7',
    '0.000001',
    '0.0000001',
    '0.00000123',
    '123456789012345',
    '1234567890123456',
    '12345678901234567890',
    '1e400',
    '-1e400',
    '5e-324',
    '-0.5',
    '100',
    '1.0e0',
  ),
);
const arbString = fc.oneof(
  fc.string({ maxLength: 12 }).map((s) => JSON.stringify(s)),
  fc.string({ unit: 'grapheme', maxLength: 8 }).map((s) => JSON.stringify(s)),
  fc.string({ unit: 'binary', maxLength: 6 }).map((s) => JSON.stringify(s)),
  fc.constantFrom('"a\\tb"', '"\\ud800"', '"\\u0041\\n"', '"\\/"', '"back\\\\slash"', '"é"', '"日本"', '"😀"', '"\\"q\\""', '""'),
);
const arbKey = fc.constantFrom('"a"', '"b"', '"c"', '"d"', '"\\u0061"', '"b"', '"é"', '"\\u00e9"', '"constructor"', '"x"', '"aa"');
const { json: arbJson } = fc.letrec<{ json: string; obj: string; arr: string }>((tie) => ({
  json: fc.oneof({ depthSize: 'small', withCrossShrink: true }, arbNumber, arbString, fc.constantFrom('true', 'false', 'null'), tie('obj'), tie('arr')),
  obj: fc.array(fc.tuple(arbWs, arbKey, arbWs, tie('json')), { maxLength: 6 }).map((ms) => `{${ms.map(([w, k, w2, v]) => `${w}${k}${w2}:${w}${v}${w2}`).join(',')}}`),
  arr: fc.array(tie('json'), { maxLength: 4 }).map((vs) => `[${vs.join(', ')}]`),
}));
/** Top-level objects mostly (what the mapping reads), with other values and broken texts mixed in. */
const arbValueBytes = fc.oneof(
  { weight: 6, arbitrary: fc.tuple(arbWs, fc.array(fc.tuple(arbKey, arbJson), { maxLength: 8 }), arbWs).map(([w, ms, w2]) => enc(`${w}{${ms.map(([k, v]) => `${k}:${v}`).join(',')}}${w2}`)) },
  { weight: 1, arbitrary: arbJson.map(enc) },
  {
    weight: 2,
    arbitrary: fc
      .tuple(fc.array(fc.tuple(arbKey, arbJson), { minLength: 1, maxLength: 4 }), fc.nat(), fc.constantFrom(-1, 0x00, 0x22, 0x2c, 0x5c, 0x7d, 0x80, 0xc3, 0xed, 0xff))
      .map(([ms, at, byte]) => {
        const b = enc(`{${ms.map(([k, v]) => `${k}:${v}`).join(',')}}`);
        const i = at % b.length;
        if (byte < 0) return Uint8Array.of(...b.subarray(0, i), ...b.subarray(i + 1)); // a byte gone
        const out = b.slice();
        out[i] = byte;
        return out;
      }),
  },
  {
    weight: 1,
    arbitrary: fc
      .constantFrom('\ufeff{"a":1}', '{"a":1} 2', '{"a":1,}', '{"a" 1}', "{'a':1}", '{"a":01}', '{"a":1.}', '{"a":-}', '{"a":"\u0001"}', '{"a":"\\x"}', '{"a":tru}', '[1,2]', '"s"', '7', 'null')
      .map(enc),
  },
  // Strings with raw bytes at the edges of what UTF-8 (TextDecoder's fatal mode) and JSON allow.
  {
    weight: 2,
    arbitrary: fc
      .constantFrom(
        [0xed, 0xa0, 0x80],
        [0xed, 0xb0, 0x80],
        [0xed, 0x9f, 0xbf],
        [0xc0, 0xaf],
        [0xc2, 0x80],
        [0xe0, 0x80, 0xaf],
        [0xe0, 0x9f, 0xbf],
        [0xe0, 0xa0, 0x80],
        [0xf0, 0x80, 0x80, 0xaf],
        [0xf0, 0x90, 0x80, 0x80],
        [0xf4, 0x8f, 0xbf, 0xbf],
        [0xf4, 0x90, 0x80, 0x80],
        [0xf5, 0x80, 0x80, 0x80],
        [0x1f],
        [0x7f],
        [0x80],
        [0xc3],
      )
      .map((raw) => Uint8Array.of(...enc('{"b":2,"a":"x'), ...raw, ...enc('y"}'))),
  },
  { weight: 1, arbitrary: fc.integer({ min: 62, max: 66 }).map((d) => enc(`{"a":${'['.repeat(d - 1)}${']'.repeat(d - 1)},"b":1}`)) },
);

/** The columns a mapping can have: value.FIELD into text, numeric, integer and bytea (scanned), and the general ones beside them. */
const columns = [
  copyColumn('value.a', 'text', 't'),
  copyColumn('value.b', 'numeric', 't'),
  copyColumn('offset', 'bigint', 't'),
  copyColumn('value.é', 'character varying(20)', 't'),
  copyColumn('value.a', 'integer', 't'),
  copyColumn('value.constructor', 'text', 't'),
  copyColumn('value.c', 'jsonb', 't'),
  copyColumn('value.d', 'bytea', 't'),
  copyColumn('partition', 'integer', 't'),
  copyColumn('timestamp', 'timestamp with time zone', 't'),
  copyColumn('value', 'jsonb', 't'),
  copyColumn('key', 'text', 't'),
];

function batchOf(values: Uint8Array[]): Uint8Array {
  const records: EncodedRecord[] = values.map((value, i) => ({ key: `k${i}`, value, encoding: 'json', headers: [], timestamp: 1_700_000_000_000 + i }));
  const b = encodeBatch({ records });
  stampBatch(b, 0, 0, 1_700_000_000_000);
  return b;
}

function lazyRecords(values: Uint8Array[]): LazyRecord[] {
  return readLazyRecords(batchOf(values), 0, (offset, timestamp, key, headers, vs, i) => new LazyRecord('t', 3, offset, timestamp, key, headers, vs, i), undefined);
}

/** The records as the sink gets them: a subscription's view of the frame (no object per record). */
const viewOf = (values: Uint8Array[]): RecordsView => new RecordsView('t').read(batchOf(values), 3, 0);

describe('COPY rows from the stored bytes', () => {
  it('are the rows the decoded values give, for any JSON and for values that are not JSON', () => {
    let scanned = 0;
    const scanner = new FieldScanner(['a', 'b', 'é', 'd']);
    fc.assert(
      fc.property(fc.array(arbValueBytes, { minLength: 1, maxLength: 12 }), (values) => {
        const writer = new CopyWriter(columns);
        const expected: string[] = [];
        // Written first, so the writer reads the bytes before anything decoded the batch.
        const view = viewOf(values);
        for (let i = 0; i < view.count; i++) {
          writer.row(view, i, true);
          if (scanner.scan(view.valueBytes(i)!, 0, view.valueBytes(i)!.length)) scanned++;
        }
        for (const r of lazyRecords(values)) expected.push(copyRow(columns, r) + '\n');
        // As bytes, as the stream sends them: a string's lone surrogate goes out as U+FFFD either way.
        expect(writer.take().toString('utf8')).toBe(Buffer.from(expected.join(''), 'utf8').toString('utf8'));
      }),
      { numRuns: 400 },
    );
    // Most generated values are objects the scanner takes: the comparison tested the fast path, not only the fallback.
    expect(scanned).toBeGreaterThan(400);
    // Seconds on an idle machine; a loaded one (load average 20 on 2 cores) took more than 30.
  }, 120_000);

  it('takes the last of duplicate keys, an escaped key as its name, and refuses what JSON.parse refuses', () => {
    const sc = new FieldScanner(['a', 'b']);
    const text = (s: string): string | null => {
      const b = enc(s);
      if (!sc.scan(b, 0, b.length)) return null;
      return [0, 1].map((j) => (sc.kind[j] === 0 ? '0:' : `${sc.kind[j]}:${Buffer.from(b.subarray(sc.start[j], sc.end[j])).toString()}`)).join(' ');
    };
    expect(text('{"a":1,"b":"x","a":"2"}')).toBe('1:2 1:x');
    expect(text('{"\\u0061":1.50}')).toBe('4:1.50 0:');
    for (const bad of ['{"a":1', '{"a":1}}', '{"a":"\t"}', '{"a":1e}', '{"a":-01}', '{"a":[1,]}', '{"a":"\\u12"}', '{,}', '']) expect(text(bad)).toBeNull();
  });

  it('gives an upsert key per distinct key columns, the same as the general path', () => {
    const keyWriter = new CopyWriter([copyColumn('value.a', 'text', 't'), copyColumn('value.b', 'integer', 't')]);
    const values = ['{"a":"x","b":1}', '{"b":1,"a":"x"}', '{"a":"x","b":2}', '{"a":"x\\ty","b":1}', 'not json'].map(enc);
    const rs = lazyRecords(values);
    const view = viewOf(values);
    const keys = rs.map((_, i) => keyWriter.key(view, i));
    expect(new Set(keys).size).toBe(4);
    expect(keys[0]).toBe(keys[1]);
    expect(keys.map((k) => Buffer.from(k, 'latin1').toString('utf8'))).toEqual(rs.map((r) => copyRow([copyColumn('value.a', 'text', 't'), copyColumn('value.b', 'integer', 't')], r) + '\n'));
  });

  it('prints offsets and timestamps as String() does at every digit count, past 2^31 too', () => {
    const ints = [copyColumn('offset', 'bigint', 't'), copyColumn('timestamp', 'bigint', 't'), copyColumn('partition', 'integer', 't')];
    const writer = new CopyWriter(ints);
    const bases = [0, 9, 10, 99, 100, 99_999, 0x7fff_fffe, 2 ** 32 - 1, 999_999_999_999, 2 ** 53 - 4];
    const expected: string[] = [];
    for (const base of bases) {
      const b = batchOf([enc('{}'), enc('1')]);
      stampBatch(b, 0, base, base);
      const view = new RecordsView('t').read(b, 3, 0);
      for (let i = 0; i < view.count; i++) {
        writer.row(view, i, true);
        expect(view.offset(i)).toBe(base + i);
        // batchOf's timestamps: 1_700_000_000_000 + i, kept as written (the append time is not the record's).
        expected.push(`${base + i}\t${view.timestamp(i)}\t3\n`);
      }
    }
    expect(writer.take().toString('utf8')).toBe(expected.join(''));
  });

  it('writes rows whole across the end of its buffer (values of every size)', () => {
    const cols = [copyColumn('value.a', 'text', 't'), copyColumn('value.b', 'numeric', 't'), copyColumn('offset', 'bigint', 't')];
    const writer = new CopyWriter(cols);
    // Over the writer's first buffer (320 KiB), with sizes that land a row's end at many places in it.
    const values = Array.from({ length: 600 }, (_, i) => enc(JSON.stringify({ a: 'x'.repeat((i * 97) % 1500), b: i / 8 })));
    const view = viewOf(values);
    for (let i = 0; i < view.count; i++) writer.row(view, i, true);
    const expected = lazyRecords(values).map((r) => copyRow(cols, r) + '\n');
    expect(writer.take().toString('utf8')).toBe(expected.join(''));
  });
});
