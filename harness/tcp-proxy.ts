/**
 * A TCP proxy on loopback between a client (a page, a Node client) and the
 * hub, for fault tests: cut every connection now, refuse new ones for a
 * while, or cut each connection at a random point of its traffic — including
 * in the middle of the hub's reply, so that a batch the hub appended never
 * gets its ack to the client — and, under chaos, delay each chunk at random
 * and half-close some connections instead of cutting them.
 */
import net from 'node:net';

interface ChaosOptions {
  /** Each connection is cut after a random number of bytes in [min, max] (both directions counted). */
  minBytes: number;
  maxBytes: number;
  /** Deterministic runs: the seed of the byte budgets (and of the delays and half-closes). */
  seed?: number;
  /** Each chunk is held back a random time in [0, maxDelayMs] (order kept per direction). Default 0. */
  maxDelayMs?: number;
  /**
   * The share (0..1) of budget ends that half-close instead of cutting: the
   * side the next chunk was going to gets a FIN, and from then on nothing
   * passes in either direction while both sockets stay open — a peer that
   * went silent, which only a request timeout or a ping notices. Default 0.
   */
  halfCloseShare?: number;
}

export interface TcpProxy {
  port: number;
  /** ws://127.0.0.1:PORT/v1/ws */
  wsUrl: string;
  /** Connections cut so far (by cutAll or chaos). */
  readonly cuts: number;
  /** Connections half-closed so far by chaos. */
  readonly halfCloses: number;
  /** Destroys every open connection (both sides). */
  cutAll(): void;
  /** While blocked, new connections are accepted and closed at once (the hub seems down). */
  block(blocked: boolean): void;
  /** Cut connections at random points (undefined: stop cutting). */
  chaos(opts: ChaosOptions | undefined): void;
  /**
   * One-shot: the next connection passes `replies` hub→client chunks, then
   * the next hub→client chunk is dropped and the connection cut — the client
   * never sees that reply (e.g. the ack of a batch the hub has appended).
   */
  loseReplyAfter(replies: number): void;
  /** Point at another hub port (after a restart on a new port). */
  retarget(port: number): void;
  close(): Promise<void>;
}

/** Mulberry32: a small seeded PRNG, so a failing chaos run can be replayed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export async function startTcpProxy(targetPort: number): Promise<TcpProxy> {
  let target = targetPort;
  let blocked = false;
  let chaos: ChaosOptions | undefined;
  let rand = Math.random;
  let cuts = 0;
  let halfCloses = 0;
  let loseAfter: number | undefined;
  const pairs = new Set<{ a: net.Socket; b: net.Socket }>();

  // No Nagle on either leg: a proxy must not add delayed-ACK stalls the real path does not have.
  const server = net.createServer({ noDelay: true }, (client) => {
    client.on('error', () => undefined);
    if (blocked) {
      client.destroy();
      return;
    }
    const upstream = net.connect({ port: target, host: '127.0.0.1', noDelay: true });
    upstream.on('error', () => undefined);
    const pair = { a: client, b: upstream };
    pairs.add(pair);
    const budget = chaos ? chaos.minBytes + Math.floor(rand() * (chaos.maxBytes - chaos.minBytes + 1)) : Infinity;
    const maxDelayMs = chaos?.maxDelayMs ?? 0;
    // Drawn only when asked for, so the seeded budgets of runs without half-closes stay as they were.
    const halfClose = chaos?.halfCloseShare ? rand() < chaos.halfCloseShare : false;
    let seen = 0;
    let silent = false;
    let repliesLeft = loseAfter;
    loseAfter = undefined;
    const cut = () => {
      if (!pairs.delete(pair)) return;
      cuts++;
      client.destroy();
      upstream.destroy();
    };
    /** Writes in order, each chunk after its random delay (none without chaos delays). */
    const sender = (to: net.Socket) => {
      const queue: Array<{ due: number; chunk: Buffer }> = [];
      let timer: NodeJS.Timeout | undefined;
      const drain = () => {
        timer = undefined;
        while (queue.length && queue[0].due <= Date.now()) {
          const { chunk } = queue.shift()!;
          if (!silent) to.write(chunk);
        }
        if (queue.length) timer = setTimeout(drain, queue[0].due - Date.now());
      };
      return (chunk: Buffer, from: net.Socket) => {
        if (maxDelayMs === 0) {
          if (!to.write(chunk)) {
            from.pause();
            to.once('drain', () => from.resume());
          }
          return;
        }
        const last = queue.length ? queue[queue.length - 1].due : 0;
        queue.push({ due: Math.max(last, Date.now() + Math.floor(rand() * (maxDelayMs + 1))), chunk });
        if (!timer) timer = setTimeout(drain, queue[0].due - Date.now());
      };
    };
    const pipe = (from: net.Socket, to: net.Socket) => {
      const send = sender(to);
      from.on('data', (chunk: Buffer) => {
        if (silent) return;
        if (from === upstream && repliesLeft !== undefined && repliesLeft-- === 0) {
          cut();
          return;
        }
        seen += chunk.length;
        if (seen > budget) {
          // Forward only part of the chunk: the other side sees a torn frame, then the cut (or the silence).
          const keep = Math.max(0, chunk.length - (seen - budget));
          if (keep > 0) send(chunk.subarray(0, keep), from);
          if (halfClose) {
            halfCloses++;
            silent = true;
            to.end();
          } else cut();
          return;
        }
        send(chunk, from);
      });
      from.on('close', () => {
        if (pairs.delete(pair)) {
          client.destroy();
          upstream.destroy();
        }
      });
    };
    pipe(client, upstream);
    pipe(upstream, client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;

  return {
    port,
    wsUrl: `ws://127.0.0.1:${port}/v1/ws`,
    get cuts() {
      return cuts;
    },
    get halfCloses() {
      return halfCloses;
    },
    cutAll() {
      for (const p of [...pairs]) {
        pairs.delete(p);
        cuts++;
        p.a.destroy();
        p.b.destroy();
      }
    },
    block(b: boolean) {
      blocked = b;
    },
    chaos(opts: ChaosOptions | undefined) {
      chaos = opts;
      rand = opts?.seed !== undefined ? prng(opts.seed) : Math.random;
    },
    loseReplyAfter(replies: number) {
      loseAfter = replies;
    },
    retarget(p: number) {
      target = p;
    },
    close() {
      for (const p of pairs) {
        p.a.destroy();
        p.b.destroy();
      }
      pairs.clear();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
