/**
 * What it costs a Chromium page's main thread to take in bytes, per MB, by
 * transport: a WebSocket's binary messages (`binaryType = 'arraybuffer'`),
 * a fetch body read with the default reader (a fresh chunk per read) and
 * with a BYOB reader into one reused buffer. No decoding: the page counts
 * the bytes. Each row gives the renderer main thread's CPU (and its kernel
 * share) and minor page faults per MB over the read, from /proc
 * (bench/lib/thread-census.ts).
 *
 *   node --import tsx bench/browser-ingest.ts [--mb 128] [--frame-bytes 133000] [--rounds 3]
 *
 * Why: replaying stored events in Chromium (bench/browser-replay.ts), about
 * half of the page's main-thread CPU is in the kernel, faulting in memory
 * Chromium allocates afresh for every received frame and decoded text
 * (bench/README.md, h13r3 and h13r4). This bench separates the transport's
 * share of that from the client's decoding.
 */
import http from 'node:http';
import { WebSocketServer } from 'ws';
import { launchRawChromium } from './lib/raw-chromium.ts';
import { censusDiff, censusSnapshot } from './lib/thread-census.ts';

const MiB = 1024 * 1024;
const arg = (name: string, dflt: number): number => {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const MB = arg('--mb', 128);
/** The replay's records frames are ~133 KB (one stored batch of 1,000 ~100-byte events). */
const FRAME_BYTES = arg('--frame-bytes', 133_000);
const ROUNDS = arg('--rounds', 3);
/** The WebSocket server stops writing while more than this is buffered. */
const WS_BUFFERED_MAX = 4 * MiB;
const HTTP_CHUNK = Buffer.alloc(64 * 1024, 0x61);
const BYOB_BUFFER_BYTES = 256 * 1024;
type Mode = 'websocket' | 'fetch' | 'fetch-byob';

function startServer(): Promise<{ url: string; close: () => void }> {
  const frame = Buffer.alloc(FRAME_BYTES, 0x61);
  const server = http.createServer((req, res) => {
    if (req.url === '/') {
      res.setHeader('content-type', 'text/html');
      return res.end('<script>window.tbReady = true</script>');
    }
    const mb = Number(new URL(req.url ?? '/', 'http://x').searchParams.get('mb'));
    res.setHeader('content-type', 'application/octet-stream');
    let left = Math.ceil((mb * MiB) / HTTP_CHUNK.length);
    const pump = (): void => {
      while (left > 0) {
        left--;
        if (!res.write(HTTP_CHUNK)) return void res.once('drain', pump);
      }
      res.end();
    };
    pump();
  });
  const wss = new WebSocketServer({ server });
  wss.on('connection', (ws) => {
    ws.on('message', (m) => {
      let left = Math.ceil((Number(m.toString()) * MiB) / frame.length);
      const pump = (): void => {
        while (left > 0 && ws.bufferedAmount < WS_BUFFERED_MAX) {
          left--;
          ws.send(frame);
        }
        if (left > 0) setTimeout(pump, 1);
      };
      pump();
    });
  });
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () =>
      resolve({
        url: `http://127.0.0.1:${(server.address() as { port: number }).port}/`,
        close: () => {
          wss.close();
          server.close();
        },
      }),
    ),
  );
}

/** Page code (self-contained): reads `mb` MB by `mode`, returns the bytes read. */
function readInPage({ mode, mb, byobBytes }: { mode: Mode; mb: number; byobBytes: number }): Promise<number> {
  return (async () => {
    let n = 0;
    const want = mb * 1024 * 1024;
    if (mode === 'websocket') {
      const ws = new WebSocket(location.href.replace('http', 'ws'));
      ws.binaryType = 'arraybuffer';
      await new Promise((r) => (ws.onopen = r));
      await new Promise<void>((r) => {
        ws.onmessage = (e) => {
          n += new Uint8Array(e.data as ArrayBuffer).length;
          if (n >= want) r();
        };
        ws.send(String(mb));
      });
      ws.close();
      return n;
    }
    const body = (await fetch(`/data?mb=${mb}`)).body!;
    if (mode === 'fetch-byob') {
      const reader = body.getReader({ mode: 'byob' });
      let buf = new ArrayBuffer(byobBytes);
      for (;;) {
        const { value, done } = await reader.read(new Uint8Array(buf));
        if (done || !value) break;
        n += value.length;
        buf = value.buffer as ArrayBuffer;
      }
      return n;
    }
    const reader = body.getReader();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      n += value.length;
    }
    return n;
  })();
}

const server = await startServer();
const raw = launchRawChromium();
try {
  const page = await raw.openTestPage(server.url);
  for (let round = 1; round <= ROUNDS; round++)
    for (const mode of ['websocket', 'fetch', 'fetch-byob'] as const) {
      await page.evaluate(readInPage, { mode, mb: Math.max(1, MB / 8), byobBytes: BYOB_BUFFER_BYTES }); // warm-up
      const before = censusSnapshot();
      const n = await page.evaluate(readInPage, { mode, mb: MB, byobBytes: BYOB_BUFFER_BYTES });
      const main = censusDiff(before, censusSnapshot()).rows.filter((r) => r.proc.startsWith('chromium renderer') && r.thread === 'chromium');
      const per = (x: number) => (x / (n / MiB)).toFixed(0);
      const sum = (k: 'us' | 'sysUs' | 'faults') => main.reduce((s, r) => s + r[k], 0);
      console.log(`round ${round} ${mode.padEnd(10)} ${(n / MiB).toFixed(0)} MB: renderer main thread ${per(sum('us'))} µs/MB (kernel ${per(sum('sysUs'))}), ${per(sum('faults'))} faults/MB`);
    }
} finally {
  await raw.close();
  server.close();
}
