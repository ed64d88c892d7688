/**
 * The transport limit: a raw uWebSockets.js server that sends every binary
 * message straight back. The load generator sends it the hub's own produce
 * frames and counts each echo as an ack, so the figure is what the socket
 * layer alone carries on this machine (both directions full frames: an upper
 * bound on any server that must at least read the frames).
 *   node --import tsx bench/limits/uws-echo.ts   → prints "listening on PORT"
 */
import uWS from 'uWebSockets.js';

const MAX_PAYLOAD_BYTES = 16 * 1024 * 1024;
const MAX_BACKPRESSURE_BYTES = 64 * 1024 * 1024;

const app = uWS.App().ws('/*', {
  compression: uWS.DISABLED,
  maxPayloadLength: MAX_PAYLOAD_BYTES,
  maxBackpressure: MAX_BACKPRESSURE_BYTES,
  idleTimeout: 0,
  message: (ws, message) => {
    ws.send(message, true);
  },
});

app.listen('127.0.0.1', 0, (token) => {
  if (!token) {
    console.error('uws-echo: could not listen');
    process.exit(1);
  }
  console.log(`listening on ${uWS.us_socket_local_port(token)}`);
});

const stop = (): void => process.exit(0);
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
