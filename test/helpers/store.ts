/** Helpers for the storage tests: temp data dirs and batches of records. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach } from 'vitest';
import { encodeBatch, decodeBatches } from '../../protocol/batch.ts';
import type { StoredRecord } from '../../protocol/record.ts';
import { FileLogStore, type FileLogStoreTuning } from '../../server/storage/file-log-store.ts';
import type { FileLogStoreOptions, LogStore } from '../../server/storage/log-store.ts';
import { nativeCrc32c } from '../../server/storage/native-crc.ts';

export function tempDir(tag = 'tributary-storage-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), tag));
}

export function rmDir(dir: string): void {
  fs.rmSync(dir, { recursive: true, force: true });
}

/** A test's data dir and the store it opened there (null until it opens one). */
export interface StoreFixture {
  dir: string;
  store: FileLogStore | null;
}

/**
 * Gives every test in the file a fresh temp data dir; after each test, closes
 * the store the test left in `store` and removes the dir. Call at the top of a test file.
 */
export function useStoreFixture(): StoreFixture {
  const fx: StoreFixture = { dir: '', store: null };
  beforeEach(() => {
    fx.dir = tempDir();
    fx.store = null;
  });
  afterEach(async () => {
    await fx.store?.close();
    rmDir(fx.dir);
  });
  return fx;
}

export interface BatchSpec {
  count?: number;
  valueBytes?: number;
  producerId?: string;
  baseSequence?: number;
  keys?: Array<string | null>;
  values?: Array<string | null>;
  tag?: string;
  timestamp?: number;
}

/** A batch of `count` records whose values say which batch and record they are. */
export function makeBatch(spec: BatchSpec = {}): Uint8Array {
  const count = spec.keys?.length ?? spec.count ?? 3;
  const records = Array.from({ length: count }, (_, i) => {
    const v = spec.values ? spec.values[i] : `${spec.tag ?? 'r'}-${i}`.padEnd(spec.valueBytes ?? 0, '.');
    return {
      key: spec.keys ? spec.keys[i] : null,
      value: v === null ? null : Buffer.from(v),
      encoding: 'bytes' as const,
      headers: [],
      timestamp: spec.timestamp ?? 1_700_000_000_000 + i,
    };
  });
  return encodeBatch({ producerId: spec.producerId, baseSequence: spec.baseSequence ?? -1, records }, nativeCrc32c);
}

export function valueText(r: StoredRecord): string | null {
  return r.value === null ? null : Buffer.from(r.value).toString();
}

/** Reads a whole partition from `from` to the high watermark, decoding the records. */
export async function readAll(store: LogStore, topic: string, partition = 0, from?: number, maxBytes = 64 * 1024): Promise<StoredRecord[]> {
  let offset = from ?? store.offsets(topic, partition).earliest;
  const out: StoredRecord[] = [];
  for (;;) {
    const r = await store.read(topic, partition, offset, maxBytes);
    if (r.bytes.length === 0) {
      if (r.nextOffset >= r.highWatermark) break;
      offset = r.nextOffset;
      continue;
    }
    out.push(...decodeBatches(r.bytes, offset));
    offset = r.nextOffset;
  }
  return out;
}

export async function openStore(dataDir: string, opts: Partial<FileLogStoreOptions & FileLogStoreTuning> = {}): Promise<FileLogStore> {
  const store = new FileLogStore({ dataDir, cleanupIntervalMs: 0, ...opts });
  await store.open();
  return store;
}
