// The one function the PostgreSQL sink (and bench/connectors.ts) uses of pg-copy-streams (a dev dependency without bundled types).
declare module 'pg-copy-streams' {
  import type { Writable } from 'node:stream';
  import type { Submittable } from 'pg';
  export function from(sql: string, options?: { highWaterMark?: number }): Writable & Submittable;
}
