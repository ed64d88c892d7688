/**
 * The one seam between the portable client and Node: a WebSocket class and
 * the file outbox. Browsers (and Node 22+, Deno, Bun) have a global
 * WebSocket; on Node 20 the client loads `node-runtime.ts` (which imports
 * `ws` and node:fs) on demand. The specifier is computed at run time so that
 * the browser bundle never contains, or tries to resolve, Node modules.
 */
import { crc32c as portableCrc32c, type Crc32c } from '../protocol/index.ts';
import type { WebSocketConstructor } from './connection.ts';
import type { OutboxStore } from './outbox.ts';

export interface NodeRuntime {
  WebSocket: WebSocketConstructor;
  fileOutbox(file: string): OutboxStore;
  /** The native CRC-32C (@node-rs/crc32), or null when its binding cannot be loaded. */
  nativeCrc32c(): Promise<Crc32c | null>;
}

let installed: NodeRuntime | undefined;

/** Called by web-client/node.ts: a static import, so Node bundlers see `ws`. */
export function installNodeRuntime(rt: NodeRuntime): void {
  installed = rt;
}

const isNode = (): boolean => typeof (globalThis as { process?: { versions?: { node?: string } } }).process?.versions?.node === 'string';

export async function loadNodeRuntime(): Promise<NodeRuntime> {
  if (installed) return installed;
  if (!isNode()) throw new Error('the Node runtime (ws, file outbox) is only available in Node');
  const spec = './node-' + 'runtime.ts';
  const mod = (await import(/* @vite-ignore */ spec)) as { nodeRuntime: NodeRuntime };
  installed = mod.nodeRuntime;
  return installed;
}

export async function webSocketClass(): Promise<WebSocketConstructor> {
  const g = (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
  if (g && !installed) return g;
  return installed?.WebSocket ?? g ?? (await loadNodeRuntime()).WebSocket;
}

let crc: Promise<Crc32c> | undefined;

/**
 * The CRC-32C the client seals its record batches with: native in Node
 * (several times faster on large batches), the portable one in browsers and
 * Workers, or in Node when the native binding is missing.
 */
export function batchCrc32c(): Promise<Crc32c> {
  crc ??= (async () => {
    if (!isNode()) return portableCrc32c;
    try {
      return (await (await loadNodeRuntime()).nativeCrc32c()) ?? portableCrc32c;
    } catch {
      return portableCrc32c;
    }
  })();
  return crc;
}
