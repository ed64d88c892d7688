/** Node's side of the runtime seam (runtime.ts): `ws`, the file outbox and the native CRC. Never bundled for browsers. */
import type { Crc32c } from '../protocol/index.ts';
import type { WebSocketConstructor } from './connection.ts';
import { FileOutboxStore } from './outbox-file.ts';
import { NodeWebSocket } from './node-socket.ts';
import type { NodeRuntime } from './runtime.ts';

export const nodeRuntime: NodeRuntime = {
  WebSocket: NodeWebSocket as unknown as WebSocketConstructor,
  fileOutbox: (file: string) => new FileOutboxStore(file),
  nativeCrc32c: loadNativeCrc,
};

let native: Promise<Crc32c | null> | undefined;

/** Loaded on first use, so that a missing prebuilt binding only costs speed (the portable CRC), never the client. */
function loadNativeCrc(): Promise<Crc32c | null> {
  native ??= import('@node-rs/crc32').then(
    (m): Crc32c =>
      (bytes, start = 0, end = bytes.length) =>
        m.crc32c(start === 0 && end === bytes.length ? bytes : bytes.subarray(start, end)),
    () => null,
  );
  return native;
}
