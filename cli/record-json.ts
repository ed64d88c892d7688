/**
 * A consumed record as one JSON line: {topic, partition, offset, timestamp,
 * key, value, headers}. JSON values print as they are (a line produced
 * without --json comes back as the same string); bytes, which JSON cannot
 * hold, print as {"$base64": "…"} as in the HTTP API.
 */
import { toBase64 } from '../protocol/index.ts';
import type { ConsumedRecord } from '../web-client/node.ts';

function jsonable(x: unknown): unknown {
  return x instanceof Uint8Array ? { $base64: toBase64(x) } : x;
}

export function recordLine(r: ConsumedRecord): string {
  return JSON.stringify({
    topic: r.topic,
    partition: r.partition,
    offset: r.offset,
    timestamp: r.timestamp,
    key: jsonable(r.key),
    value: jsonable(r.value),
    headers: r.headers.map(([name, value]) => [name, jsonable(value)]),
  });
}
