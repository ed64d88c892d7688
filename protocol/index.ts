/** The protocol module: shared by hub, web client and edge worker. Pure: no I/O, no Node-only APIs. */
export * from './errors.ts';
export * from './limits.ts';
export * from './record.ts';
export * from './batch.ts';
export { keyBytes, writeBytes, writeUtf8Once } from './record-fields.ts';
export * from './record-body.ts';
export * from './batch-reader.ts';
export * from './frame-index.ts';
export * from './crc32c.ts';
export * from './partitioner.ts';
export * from './codec.ts';
export * from './frames.ts';
export * from './frame-decoder.ts';
export * from './values.ts';
export { SlabPool } from './slab-pool.ts';
export * from './varint.ts';
export * from './topic-patterns.ts';
export * from './bearer.ts';
