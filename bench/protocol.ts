/**
 * Protocol scenario: encode a 100-event batch of 100-byte values and decode
 * it back, in events/s. Also the CBOR produce frame around it and the
 * hub's validate step (CRC-32C native vs portable). Runs alone:
 *   node --import tsx bench/protocol.ts [--quick]
 */
import { crc32c as nativeCrc } from '@node-rs/crc32';
import { checkBatch, decodeBatch, decodeClientFrame, encodeBatch, encodeCbor, stampBatch, toWireRecord, type EncodedRecord } from '../protocol/index.ts';

export interface ProtocolResult {
  scenario: 'protocol';
  system: string;
  eventsPerSec: number;
  mbPerSec?: number;
  notes?: string;
}

const native = (b: Uint8Array, s = 0, e = b.length) => nativeCrc(Buffer.from(b.buffer, b.byteOffset + s, e - s));

function measure(seconds: number, eventsPerOp: number, op: () => void): number {
  for (let i = 0; i < 200; i++) op(); // warm up
  let ops = 0;
  const start = process.hrtime.bigint();
  const limit = BigInt(Math.round(seconds * 1e9));
  let elapsed = 0n;
  while (elapsed < limit) {
    for (let i = 0; i < 100; i++) op();
    ops += 100;
    elapsed = process.hrtime.bigint() - start;
  }
  return (ops * eventsPerOp) / (Number(elapsed) / 1e9);
}

export async function runProtocolBench(opts: { quick: boolean }): Promise<ProtocolResult[]> {
  const seconds = opts.quick ? 0.5 : 2;
  const N = 100;
  const records: EncodedRecord[] = Array.from({ length: N }, (_, i) => ({
    key: `key-${i % 10}`,
    value: new Uint8Array(100).fill(i & 0xff),
    encoding: 'bytes',
    headers: [],
    timestamp: 1_700_000_000_000 + i,
  }));
  const batch = encodeBatch({ producerId: 'bench', baseSequence: 0, records });
  const mb = (eps: number) => (eps * batch.length) / N / 1e6;
  const out: ProtocolResult[] = [];
  const encodeNative = measure(seconds, N, () => encodeBatch({ producerId: 'bench', baseSequence: 0, records }, native));
  out.push({ scenario: 'protocol', system: 'batch-encode', eventsPerSec: encodeNative, mbPerSec: mb(encodeNative), notes: '100 × 100-byte values, native CRC-32C' });
  const encodePortable = measure(seconds, N, () => encodeBatch({ producerId: 'bench', baseSequence: 0, records }));
  out.push({ scenario: 'protocol', system: 'batch-encode-portable-crc', eventsPerSec: encodePortable, mbPerSec: mb(encodePortable), notes: 'as browsers and Workers run it' });
  const decode = measure(seconds, N, () => decodeBatch(batch));
  out.push({ scenario: 'protocol', system: 'batch-decode', eventsPerSec: decode, mbPerSec: mb(decode), notes: 'CRC check + every record decoded' });
  const roundTrip = measure(seconds, N, () => decodeBatch(encodeBatch({ producerId: 'bench', baseSequence: 0, records })));
  out.push({ scenario: 'protocol', system: 'batch-round-trip', eventsPerSec: roundTrip, mbPerSec: mb(roundTrip), notes: 'encode then decode (portable CRC)' });
  const check = measure(seconds, N, () => {
    checkBatch(batch, 0, batch.length, native, true);
    stampBatch(batch, 0, 0, 1, native);
  });
  out.push({ scenario: 'protocol', system: 'hub-validate-stamp', eventsPerSec: check, mbPerSec: mb(check), notes: 'deep check + stamp, native CRC' });
  const frame = encodeCbor({ t: 'produce', id: 1, topic: 'bench', pid: 'p', seq: 0, records: records.map(toWireRecord) });
  const frameDecode = measure(seconds, N, () => decodeClientFrame(frame));
  out.push({ scenario: 'protocol', system: 'produce-frame-decode', eventsPerSec: frameDecode, notes: `CBOR produce frame of ${frame.length} bytes, validated` });
  return out;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const results = await runProtocolBench({ quick: process.argv.includes('--quick') });
  console.table(results.map((r) => ({ system: r.system, 'events/s': Math.round(r.eventsPerSec).toLocaleString('en'), 'MB/s': r.mbPerSec?.toFixed(1) ?? '', notes: r.notes ?? '' })));
}
