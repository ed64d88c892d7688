/**
 * A WebSocket connection for load generation: `ws` with an all-zero masking
 * key (legal, and ws then skips the masking pass, so the generator spends its
 * CPU on the load rather than on XOR), no compression, no UTF-8 checks.
 * The same client drives the hub, the uWS echo and the durable append server.
 */
import WebSocket from 'ws';
import { encodeCbor } from '../../protocol/codec.ts';

const zeroMask = (mask: Buffer): void => {
  mask.fill(0);
};

export interface WsConn {
  ws: WebSocket;
  send(b: Uint8Array): void;
  /** Sends `frame` and resolves with the first reply (used for hello/subscribe before the stream starts). */
  request(frame: Record<string, unknown>): Promise<Buffer>;
  close(): void;
}

export interface WsOptions {
  /** Subprotocols to offer (the hub speaks `tributary.v1`). */
  protocols?: string[];
  headers?: Record<string, string>;
  timeoutMs?: number;
  /** Source address to connect from (127.0.0.x spreads connections over more ephemeral ports). */
  localAddress?: string;
}

export function connectWs(url: string, onMessage: (data: Buffer) => void, opts: WsOptions = {}): Promise<WsConn> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, opts.protocols ?? [], {
      perMessageDeflate: false,
      skipUTF8Validation: true,
      generateMask: zeroMask,
      handshakeTimeout: opts.timeoutMs ?? 10_000,
      headers: opts.headers,
      maxPayload: 64 * 1024 * 1024,
      ...(opts.localAddress ? { localAddress: opts.localAddress } : {}),
    });
    ws.binaryType = 'nodebuffer';
    let waiter: ((b: Buffer) => void) | null = null;
    ws.on('message', (data: Buffer) => {
      if (waiter) {
        const w = waiter;
        waiter = null;
        w(data);
        return;
      }
      onMessage(data);
    });
    ws.once('error', reject);
    ws.once('open', () => {
      ws.off('error', reject);
      ws.on('error', () => {
        // surfaced through close; a load run counts what it got
      });
      const conn: WsConn = {
        ws,
        send: (b) => ws.send(b, { binary: true }),
        request: (frame) =>
          new Promise<Buffer>((res, rej) => {
            const timer = setTimeout(() => rej(new Error(`no reply to ${String(frame.t)} within 10 s`)), 10_000);
            waiter = (b) => {
              clearTimeout(timer);
              res(b);
            };
            ws.send(encodeCbor(frame), { binary: true });
          }),
        close: () => ws.terminate(),
      };
      resolve(conn);
    });
  });
}

const ID_KEY = Buffer.from([0x62, 0x69, 0x64]); // CBOR text "id"
/** Ids from 2^16 on always encode as 0x1a + 4 bytes, so a frame's id can be patched in place. */
export const FIRST_PATCHABLE_ID = 0x10000;

/**
 * A produce frame encoded once, whose id can be rewritten in place: the load
 * sends exactly the bytes the hub's protocol defines, without re-encoding
 * 100 records per request.
 */
export class ProduceTemplate {
  readonly bytes: Buffer;
  private readonly idPos: number;

  /** `body`: the frame's fields after `t` and `id` (`topic` and `records` or `batches`). */
  constructor(body: Record<string, unknown>) {
    this.bytes = Buffer.from(encodeCbor({ t: 'produce', id: FIRST_PATCHABLE_ID, ...body }));
    const at = this.bytes.indexOf(Buffer.concat([ID_KEY, Buffer.from([0x1a, 0x00, 0x01, 0x00, 0x00])]));
    if (at < 0) throw new Error('produce template: id not found where expected');
    this.idPos = at + ID_KEY.length + 1;
  }

  /** A copy with `id` (the copy may sit in the socket's queue while the template is patched again). */
  withId(id: number): Buffer {
    const b = Buffer.allocUnsafe(this.bytes.length);
    this.bytes.copy(b);
    b.writeUInt32BE(id >>> 0, this.idPos);
    return b;
  }

  /** Patches `target` (a buffer made by withId) in place with a new id. */
  static setId(target: Buffer, template: ProduceTemplate, id: number): void {
    target.writeUInt32BE(id >>> 0, template.idPos);
  }
}
