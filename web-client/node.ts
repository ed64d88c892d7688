/**
 * The Node entry: the same API as index.ts, with `ws` as the WebSocket and
 * the file outbox available (`outbox: { file }`). Default outbox in Node:
 * memory.
 */
import { nodeRuntime } from './node-runtime.ts';
import { installNodeRuntime } from './runtime.ts';

installNodeRuntime(nodeRuntime);

export * from './index.ts';
export { FileOutboxStore } from './outbox-file.ts';
