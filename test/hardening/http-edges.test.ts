/**
 * HTTP and WebSocket edge cases (RFC 9110/9112), checked with raw sockets
 * so that what uWebSockets.js does itself is seen as a client sees it.
 * Where uWS answers before the hub can (unknown methods, oversized or
 * split header blocks, frames far over maxFrameBytes), the test pins down
 * what really happens, as docs/security.md describes it.
 */
import net from 'node:net';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeCbor } from '../../protocol/codec.ts';
import { LIMITS } from '../../protocol/limits.ts';
import type { Hub } from '../../harness/hub.ts';
import { WsClient } from '../helpers/ws-client.ts';
import { APP_ORIGIN, adminToken, startAuthHub } from '../helpers/auth-hub.ts';

let hub: Hub;

beforeAll(async () => {
  hub = await startAuthHub();
});

afterAll(async () => {
  await hub.stop();
  hub.cleanup();
});

interface RawAnswer {
  status: number;
  head: string;
  body: string;
  /** The server closed the connection (within waitMs of the answer). */
  closed: boolean;
}

/** Writes `request` on a fresh TCP connection; resolves once the server closed it or waitMs passed. */
function raw(request: string | Buffer, waitMs = 3000): Promise<RawAnswer> {
  return new Promise((resolve) => {
    const s = net.connect(hub.port, '127.0.0.1');
    let out = '';
    const finish = (closed: boolean): void => {
      clearTimeout(timer);
      s.destroy();
      const [head = '', body = ''] = out.split('\r\n\r\n');
      resolve({ status: Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1] ?? 0), head: head.toLowerCase(), body, closed });
    };
    const timer = setTimeout(() => finish(false), waitMs);
    s.on('data', (d) => (out += d.toString('latin1')));
    s.on('close', () => finish(true));
    s.on('error', () => undefined);
    s.write(request);
  });
}

describe('HTTP framing and methods', () => {
  it('two Content-Length headers → 400 and the connection closed', async () => {
    const a = await raw(`POST /v1/topics HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 5\r\n\r\n{}`);
    expect(a.status).toBe(400);
    expect(a.body).toMatch(/Content-Length/);
    expect(a.closed).toBe(true);
  });

  it('Content-Length with Transfer-Encoding: uWebSockets.js drops the connection without an answer (documented)', async () => {
    const a = await raw(`POST /v1/topics HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n{}`);
    expect(a.status).toBe(0);
    expect(a.closed).toBe(true);
  });

  it('a method the hub knows but the route does not serve → 405 with Allow', async () => {
    const a = await raw(`PUT /v1/topics HTTP/1.1\r\nHost: x\r\n\r\n`);
    expect(a.status).toBe(405);
    expect(a.head).toMatch(/\r\nallow: get, post/);
  });

  it('an extension method (PROPFIND) is dropped by uWebSockets.js without an answer (documented; the hub never sees it)', async () => {
    const a = await raw(`PROPFIND /v1/topics HTTP/1.1\r\nHost: x\r\n\r\n`);
    expect(a.status).toBe(0);
    expect(a.closed).toBe(true);
  });

  it('a header block over maxHttpHeaderBytes → 431 and the connection closed', async () => {
    const a = await raw(`GET /livez HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(40 * 1024)}\r\n\r\n`);
    // Parsed whole, the block gets the hub's 431; arriving over several reads, uWS drops the connection
    // unanswered past 4 KiB (docs/security.md). Which one depends on how loopback splits the 40 KiB (two CI runs
    // saw the second). Never served, and closed either way.
    expect([431, 0]).toContain(a.status);
    expect(a.closed).toBe(true);
  });

  it('a 16 KiB token in a header block read whole is served', async () => {
    const a = await raw(`GET /livez HTTP/1.1\r\nHost: x\r\nX-Pad: ${'a'.repeat(LIMITS.maxTokenBytes)}\r\n\r\n`);
    expect(a.status).toBe(200);
  });

  /** Sends a header block in two writes 400 ms apart, so that uWS reads it in pieces. */
  async function inPieces(padBytes: number): Promise<RawAnswer> {
    const half = 'a'.repeat(padBytes / 2);
    return new Promise((resolve) => {
      const s = net.connect(hub.port, '127.0.0.1');
      let out = '';
      let closed = false;
      s.on('data', (d) => (out += d.toString('latin1')));
      s.on('close', () => (closed = true));
      s.on('error', () => undefined);
      s.write(`GET /livez HTTP/1.1\r\nHost: x\r\nX-Pad: ${half}`);
      setTimeout(() => s.write(`${half}\r\n\r\n`), 400);
      setTimeout(() => {
        s.destroy();
        resolve({ status: Number(/^HTTP\/1\.1 (\d{3})/.exec(out)?.[1] ?? 0), head: out.toLowerCase(), body: '', closed });
      }, 3000);
    });
  }

  it('a header block read in pieces: served under 4 KiB; over it, uWebSockets.js drops the connection unanswered (documented)', async () => {
    expect((await inPieces(3000)).status).toBe(200);
    const big = await inPieces(6000);
    expect(big.status).toBe(0);
    expect(big.closed).toBe(true);
  });

  it('a CORS preflight lists only the methods the route has', async () => {
    const topics = await raw(`OPTIONS /v1/topics HTTP/1.1\r\nHost: x\r\nOrigin: ${APP_ORIGIN}\r\nAccess-Control-Request-Method: POST\r\n\r\n`);
    expect(topics.status).toBe(204);
    expect(/access-control-allow-methods: ([^\r]*)/.exec(topics.head)?.[1]).toBe('get, post, options');
    const topic = await raw(`OPTIONS /v1/topics/orders HTTP/1.1\r\nHost: x\r\nOrigin: ${APP_ORIGIN}\r\nAccess-Control-Request-Method: PATCH\r\n\r\n`);
    expect(/access-control-allow-methods: ([^\r]*)/.exec(topic.head)?.[1]).toBe('get, patch, delete, options');
  });

  it.each(['Token', 'ACCESS_TOKEN', 'authorization', 'Authorization', 'JWT'])('a token in the URL as ?%s= is refused with 400', async (name) => {
    const res = await fetch(`${hub.url}/v1/topics?${name}=${await adminToken()}`, { headers: { authorization: `Bearer ${await adminToken()}` } });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: { message: string } }).error.message).toMatch(/not accepted in the URL/);
  });
});

describe('WebSocket edges', () => {
  it(`a hello with a token over ${LIMITS.maxTokenBytes} bytes closes with 4401`, async () => {
    const c = await WsClient.connect(hub.wsUrl);
    await expect(c.hello('a'.repeat(LIMITS.maxTokenBytes + 1))).rejects.toMatchObject({ code: 'TOKEN_INVALID' });
    const closed = await c.closed;
    expect(closed.code).toBe(4401);
    expect(closed.reason).toMatch(/longer than/);
  });

  async function sendFrame(size: number): Promise<number> {
    const ws = new WebSocket(hub.wsUrl, { maxPayload: 64 * 1024 * 1024 });
    ws.on('error', () => undefined);
    await new Promise((r) => ws.once('open', r));
    const closed = new Promise<number>((r) => ws.once('close', (code) => r(code)));
    ws.send(Buffer.alloc(size));
    return closed;
  }

  it('a frame just over maxFrameBytes closes with 4413 FRAME_TOO_LARGE', async () => {
    expect(await sendFrame(LIMITS.maxFrameBytes + 1)).toBe(4413);
  });

  it('a frame more than 64 KiB over maxFrameBytes: uWebSockets.js drops the TCP connection, the client sees 1006 (documented)', async () => {
    expect(await sendFrame(LIMITS.maxFrameBytes + 1024 * 1024)).toBe(1006);
  });

  it('the hub still serves after all of that', async () => {
    const c = await WsClient.connect(hub.wsUrl);
    await c.hello(await adminToken());
    expect((await c.request({ t: 'ping' })).t).toBe('ok');
    await c.close();
    void encodeCbor;
  });
});
