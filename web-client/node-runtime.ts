/** Node's side of the runtime seam (runtime.ts): `ws` and the file outbox. Never bundled for browsers. */
import WebSocket from 'ws';
import type { WebSocketConstructor } from './connection.ts';
import { FileOutboxStore } from './outbox-file.ts';
import type { NodeRuntime } from './runtime.ts';

export const nodeRuntime: NodeRuntime = {
  WebSocket: WebSocket as unknown as WebSocketConstructor,
  fileOutbox: (file: string) => new FileOutboxStore(file),
};
