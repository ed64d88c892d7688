/**
 * Node's WebSocket: `ws`, with frames left unmasked (an all-zero masking key)
 * where no one between the client and the hub reads them: over TLS (`wss:`),
 * and to a loopback address. RFC 6455 asks a client for unpredictable masks
 * so that script-chosen bytes cannot pose as another protocol to a proxy on
 * the path; TLS hides the bytes from any proxy and loopback has none. An
 * unmasked frame is sent as it is (no copy of the payload, no XOR pass: a
 * tenth of a busy producer's CPU, measured in bench/README.md's outbox
 * section); plain `ws:` to any other host keeps `ws`'s random masks.
 */
import WebSocket from 'ws';

const LOOPBACK_HOSTS = new Set(['localhost', '127.0.0.1', '[::1]']);

/** Whether frames to `url` may go unmasked: TLS, or a loopback host. */
export function unmaskedFramesFor(url: string): boolean {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return false;
  }
  return u.protocol === 'wss:' || u.protocol === 'https:' || LOOPBACK_HOSTS.has(u.hostname) || /^127\.\d+\.\d+\.\d+$/.test(u.hostname);
}

function zeroMask(mask: Uint8Array): void {
  mask[0] = mask[1] = mask[2] = mask[3] = 0;
}

export class NodeWebSocket extends WebSocket {
  constructor(url: string, protocols?: string | string[]) {
    super(url, protocols, unmaskedFramesFor(url) ? { generateMask: zeroMask } : {});
  }
}
