/**
 * Stream processing on the web client (Node and browsers): Kafka Streams'
 * ideas as a small typed builder. README.md "Stream processing" has the
 * example, the guarantees and where they stop.
 */
export { stream, StreamApp, type StreamOptions, type InternalTopic } from './app.ts';
export { KStream, GroupedStream, WindowedStream, KTable, type Table, type WindowOptions, type StartFrom, type ValuesMode } from './builder.ts';
export type { Rec, RecUpdate, StreamMetrics } from './nodes.ts';
export type { EmitMode, WindowResult } from './aggregate-nodes.ts';
export type { WindowSpec } from './windows.ts';
export type { StreamsClient } from './client-contract.ts';
export { StreamsError, type StreamsErrorCode } from './errors.ts';
export { IdbLocalState, type LocalState, type LocalSnapshot } from './idb-state.ts';
