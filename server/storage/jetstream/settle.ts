/**
 * Asking JetStream again while its answer may change in a moment: a stream
 * created a moment ago not yet known to the server a request reaches, a
 * peer not yet current, a node routed to the others but not yet a
 * JetStream peer. Each retry loop is bounded in time and backs off.
 */
import type { JsEnv } from './js-partition.ts';

/** A stream created a moment ago may not be known yet to the server a request reaches, or the meta group is busy (a super-cluster): retry this long. */
const NEW_STREAM_SETTLE_MS = 15_000;

/** How long a refusal for lack of peers is asked again by default (JetStreamLogStoreOptions.replicaWaitMs). */
export const REPLICA_WAIT_MS = 15_000;

/** A refusal that passes once a peer is current again. */
const PEER_OFFLINE = /peer offline/i;
/** With three or more servers routed together, also a lack of peers: a meta group that elected its leader with two of three nodes says so until the third joins. */
const PEERS_MISSING = /peer offline|insufficient resources|no suitable peers/i;

/** Retries `op` while it fails with an error matching `transient`, backing off from `firstDelayMs` to 1 s, up to `windowMs`; `onRetry` hears each refusal asked again. */
async function retryWhile<T>(transient: RegExp, firstDelayMs: number, op: () => Promise<T>, windowMs = NEW_STREAM_SETTLE_MS, onRetry?: (err: unknown) => void): Promise<T> {
  const until = Date.now() + windowMs;
  for (let delay = firstDelayMs; ; delay = Math.min(delay * 2, 1000)) {
    try {
      return await op();
    } catch (err) {
      if (Date.now() > until || !transient.test(String(err))) throw err;
      onRetry?.(err);
      await new Promise((r) => setTimeout(r, delay));
    }
  }
}

/** Retries `op` while the stream is not known yet to the server a request reaches, or the request timed out. */
export const settled = <T>(op: () => Promise<T>): Promise<T> => retryWhile(/stream not found|TIMEOUT/i, 50, op);

/**
 * Runs `op` (a stream's creation), asking again for up to `waitMs` while the
 * cluster answers that a peer is offline, and, with `servers` ≥ 3 routed
 * together, while it answers that it lacks the peers for the replicas: that
 * says nothing of the cluster's size (a node routed but not yet a JetStream
 * peer answers "no suitable peers for placement"), and taken for it, it made
 * the catalog and every topic R1 on a 3-node cluster. The first refusal and
 * the grant after it are logged, so a slow start shows in the hub's log.
 */
export async function withPeersSettled<T>(o: { what: string; servers: number; waitMs: number; log: JsEnv['log'] }, op: () => Promise<T>): Promise<T> {
  const since = Date.now();
  let refused = false;
  const result = await retryWhile(o.servers >= 3 ? PEERS_MISSING : PEER_OFFLINE, 100, op, o.waitMs, (err) => {
    if (refused) return;
    refused = true;
    o.log.info({ what: o.what, err: String(err), servers: o.servers, waitMs: o.waitMs }, 'JetStream refused the replicas asked for: asking again while its peers join');
  });
  if (refused) o.log.info({ what: o.what, servers: o.servers, afterMs: Date.now() - since }, 'JetStream granted the replicas asked for');
  return result;
}
