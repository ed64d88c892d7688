/**
 * The disk limit: the produce frames' own bytes (100 records × 100 bytes in
 * the hub's CBOR produce frame) written sequentially to one file, either
 * without any sync (page cache speed) or with fdatasync after every frame
 * (what one producer with one request in flight could get, at best).
 *   node --import tsx bench/limits/raw-disk.ts DIR nosync|fdatasync DURATION_MS [BATCH] [VALUE_BYTES]
 * Prints `RESULT {json}` (a LoadResult) like a load process.
 */
import fs from 'node:fs';
import path from 'node:path';
import { RESULT_PREFIX, type LoadResult } from '../load/job.ts';
import { makeValue } from '../load/common.ts';
import { ProduceTemplate } from '../load/ws-client.ts';

/** Bounded whatever the duration: at most this many frames per run. */
const MAX_FRAMES = 10_000_000;

const [dir, mode, durationArg, batchArg, valueArg] = process.argv.slice(2);
if (!dir || (mode !== 'nosync' && mode !== 'fdatasync') || !durationArg) {
  console.error('usage: raw-disk.ts DIR nosync|fdatasync DURATION_MS [BATCH] [VALUE_BYTES]');
  process.exit(2);
}
const durationMs = Number(durationArg);
const batch = Number(batchArg ?? 100);
const valueBytes = Number(valueArg ?? 100);

const template = new ProduceTemplate('bench', Array.from({ length: batch }, () => ({ v: makeValue(valueBytes) })));
const frame = template.bytes;
const file = path.join(dir, `raw-${mode}.log`);
const fd = fs.openSync(file, 'w');
const sync = mode === 'fdatasync';

const start = performance.now();
const stopAt = start + durationMs;
let frames = 0;
let syncs = 0;
while (frames < MAX_FRAMES) {
  // Check the clock every 64 frames: cheap enough, and bounded in time.
  if ((frames & 63) === 0 && performance.now() >= stopAt) break;
  fs.writeSync(fd, frame);
  frames++;
  if (sync) {
    fs.fdatasyncSync(fd);
    syncs++;
  }
}
if (!sync) fs.fdatasyncSync(fd); // not timed: leave the disk quiet for the next run
const elapsedMs = performance.now() - start;
fs.closeSync(fd);
fs.rmSync(file, { force: true });

const events = frames * batch;
const result: LoadResult = {
  events,
  bytes: events * valueBytes,
  elapsedMs,
  errors: 0,
  notes: [`${frames} frames of ${frame.length} bytes${sync ? `, ${syncs} fdatasync` : ''}`],
};
process.stdout.write(`${RESULT_PREFIX}${JSON.stringify(result)}\n`);
