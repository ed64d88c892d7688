/**
 * Node's WebSocket leaves frames unmasked (all-zero key) only where no proxy
 * reads them: TLS and loopback. A raw TCP server on loopback plays the hub's
 * handshake and reads the client's first frame as bytes.
 */
import crypto from 'node:crypto';
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { NodeWebSocket, unmaskedFramesFor } from '../../web-client/node-socket.ts';

describe('NodeWebSocket masks', () => {
  let server: net.Server | undefined;
  afterEach(() => server?.close());

  it("unmasked over TLS and to loopback, ws's random masks elsewhere", () => {
    for (const url of ['wss://hub.example.com/v1/ws', 'ws://127.0.0.1:8080/v1/ws', 'ws://127.3.2.1/v1/ws', 'ws://localhost:1/v1/ws', 'ws://[::1]:9/v1/ws'])
      expect(unmaskedFramesFor(url), url).toBe(true);
    for (const url of ['ws://hub.example.com/v1/ws', 'ws://10.0.0.1:8080/v1/ws', 'ws://127.0.0.1.example.com/v1/ws', 'ws://localhost.example.com/', 'not a url'])
      expect(unmaskedFramesFor(url), url).toBe(false);
  });

  it('a frame to a loopback hub carries an all-zero masking key and the payload as it is', async () => {
    const frame = new Promise<Buffer>((resolve, reject) => {
      server = net.createServer((sock) => {
        let buf = Buffer.alloc(0);
        let upgraded = false;
        sock.on('data', (d) => {
          buf = Buffer.concat([buf, d]);
          if (!upgraded) {
            const end = buf.indexOf('\r\n\r\n');
            if (end < 0) return;
            const key = /sec-websocket-key: *(\S+)/i.exec(buf.subarray(0, end).toString())?.[1];
            const accept = crypto.createHash('sha1').update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
            sock.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\nSec-WebSocket-Protocol: p\r\n\r\n`);
            upgraded = true;
            buf = buf.subarray(end + 4);
          }
          if (buf.length >= 2 + 4 + 3) resolve(buf);
        });
        sock.on('error', reject);
      });
      server.listen(0, '127.0.0.1');
    });
    await new Promise((r) => server!.once('listening', r));
    const ws = new NodeWebSocket(`ws://127.0.0.1:${(server!.address() as net.AddressInfo).port}/v1/ws`, ['p']);
    await new Promise((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
    });
    ws.send(new Uint8Array([1, 2, 3]));
    const bytes = await frame;
    ws.terminate();
    expect(bytes[0]).toBe(0x82); // fin, binary
    expect(bytes[1]).toBe(0x80 | 3); // masked (a client's frames always are), 3 bytes
    expect([...bytes.subarray(2, 9)]).toEqual([0, 0, 0, 0, 1, 2, 3]);
  });
});
