/**
 * The design ceiling (issue 4): the least a durable WebSocket log must do per
 * produce frame, and nothing of a broker.
 *
 *   uWS receives the frame → decode the CBOR (the hub must too) → in batch
 *   form, check each batch's CRC-32C (native) → CRC-32C of the stored bytes
 *   (a checksummed log entry, as the hub's batch CRC) → queue
 *   [length u32][crc u32][frame] for the one log file → group commit: one
 *   writev + fdatasync at a time; every frame that arrived while it ran
 *   shares the next → ack each frame, `{t:'ack',id,parts:[{p:0,o}]}`, only
 *   after its fdatasync returned.
 *
 * No topics, partitions, offsets index, idempotence or subscriptions: the
 * hub's produce path should reach ≥ 80% of this.
 *   node --import tsx bench/limits/durable-append.ts DIR   → "listening on PORT"
 */
import fs from 'node:fs';
import path from 'node:path';
import { crc32c } from '@node-rs/crc32';
import uWS from 'uWebSockets.js';
import { checkBatch, readRecordCount } from '../../protocol/batch.ts';
import { decodeCbor, encodeCbor } from '../../protocol/codec.ts';
import { nativeCrc32c as nativeCrc } from '../../server/storage/native-crc.ts';

const MAX_PAYLOAD_BYTES = 16 * 1024 * 1024;
const MAX_BACKPRESSURE_BYTES = 64 * 1024 * 1024;
/** Bytes of one commit group at most (the writev that goes before one fdatasync). */
const MAX_GROUP_BYTES = 64 * 1024 * 1024;

interface Conn {
  open: boolean;
}
interface PendingAck {
  ws: uWS.WebSocket<Conn>;
  id: number;
  offset: number;
}

const dir = process.argv[2];
if (!dir) {
  console.error('usage: durable-append.ts DATA_DIR');
  process.exit(2);
}
const fd = fs.openSync(path.join(dir, 'append.log'), 'a');

let nextOffset = 0;
let queuedBuffers: Buffer[] = [];
let queuedAcks: PendingAck[] = [];
let queuedBytes = 0;
let committing = false;
let groups = 0;
let framesCommitted = 0;

function commit(): void {
  if (committing || queuedBuffers.length === 0) return;
  committing = true;
  const buffers = queuedBuffers;
  const acks = queuedAcks;
  queuedBuffers = [];
  queuedAcks = [];
  queuedBytes = 0;
  fs.writev(fd, buffers, (werr) => {
    if (werr) fail(werr);
    fs.fdatasync(fd, (serr) => {
      if (serr) fail(serr);
      groups++;
      framesCommitted += acks.length;
      sendAcks(acks);
      committing = false;
      commit();
    });
  });
}

function sendAcks(acks: PendingAck[]): void {
  // One cork per socket: its acks of this group leave in one write.
  const bySocket = new Map<uWS.WebSocket<Conn>, PendingAck[]>();
  for (const a of acks) {
    const list = bySocket.get(a.ws);
    if (list) list.push(a);
    else bySocket.set(a.ws, [a]);
  }
  for (const [ws, list] of bySocket) {
    if (!ws.getUserData().open) continue;
    ws.cork(() => {
      for (const a of list) ws.send(encodeCbor({ t: 'ack', id: a.id, parts: [{ p: 0, o: a.offset }] }), true);
    });
  }
}

function fail(e: Error): never {
  console.error(`durable-append: ${e.message}`);
  process.exit(1);
}

const app = uWS.App().ws<Conn>('/*', {
  compression: uWS.DISABLED,
  maxPayloadLength: MAX_PAYLOAD_BYTES,
  maxBackpressure: MAX_BACKPRESSURE_BYTES,
  idleTimeout: 0,
  upgrade: (res, req, context) => {
    res.upgrade<Conn>({ open: true }, req.getHeader('sec-websocket-key'), req.getHeader('sec-websocket-protocol'), req.getHeader('sec-websocket-extensions'), context);
  },
  message: (ws, message) => {
    // uWS reuses `message` after this callback: the stored copy is the one we keep.
    const frame = Buffer.allocUnsafe(message.byteLength + 8);
    frame.set(new Uint8Array(message), 8);
    const body = frame.subarray(8);
    let f: { t?: unknown; id?: unknown; records?: unknown; batches?: unknown };
    try {
      f = decodeCbor(body) as typeof f;
    } catch {
      ws.send(encodeCbor({ t: 'error', code: 'BAD_FRAME', message: 'not CBOR', retriable: false }), true);
      return;
    }
    const id = typeof f.id === 'number' ? f.id : 0;
    if (f.t !== 'produce' || !(Array.isArray(f.records) || Array.isArray(f.batches))) {
      ws.send(encodeCbor({ t: 'ok', id }), true);
      return;
    }
    // Batch form: check each batch's own CRC (the hub does that and walks the records too).
    let records = Array.isArray(f.records) ? f.records.length : 0;
    if (Array.isArray(f.batches)) {
      for (const x of f.batches as Array<{ b?: unknown }>) {
        const b = x?.b;
        if (!(b instanceof Uint8Array) || checkBatch(b, 0, b.length, nativeCrc, false) !== null) {
          ws.send(encodeCbor({ t: 'error', id, code: 'CORRUPT_BATCH', message: 'batch fails its check', retriable: false }), true);
          return;
        }
        records += readRecordCount(b);
      }
    }
    if (queuedBytes + frame.length > MAX_GROUP_BYTES) {
      ws.send(encodeCbor({ t: 'error', id, code: 'BUSY', message: 'commit queue full', retriable: true }), true);
      return;
    }
    frame.writeUInt32BE(body.length, 0);
    frame.writeUInt32BE(crc32c(body), 4);
    queuedBuffers.push(frame);
    queuedAcks.push({ ws, id, offset: nextOffset });
    nextOffset += records;
    queuedBytes += frame.length;
    commit();
  },
  close: (ws) => {
    ws.getUserData().open = false;
  },
});

app.listen('127.0.0.1', 0, (token) => {
  if (!token) fail(new Error('could not listen'));
  console.log(`listening on ${uWS.us_socket_local_port(token)}`);
});

const stop = (): void => {
  console.log(`durable-append: ${framesCommitted} frames in ${groups} fdatasync groups (${groups ? (framesCommitted / groups).toFixed(1) : 0} frames per fdatasync)`);
  fs.closeSync(fd);
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
