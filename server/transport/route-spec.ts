/**
 * The shape of an HTTP route: method, pattern, handler and when it is
 * served. Its own file so that route lists (http-routes.ts, http-groups.ts)
 * share it without importing each other.
 */
import type { Exchange } from './http-io.ts';
import type { Principal } from '../auth/index.ts';

export type Method = 'get' | 'post' | 'patch' | 'del';
type Handler = (x: Exchange, params: string[], principal: Principal, body: () => Promise<Record<string, unknown>>) => Promise<void> | void;

export interface RouteSpec {
  method: Method;
  pattern: string;
  handler: Handler;
  /** Served before recovery has finished (health and metrics). */
  always?: boolean;
  /** Served without a token, also with auth on (health, metrics, the dashboard page). */
  open?: boolean;
  /** Takes a JSON or CBOR body (read from the start: uWS wants onData set in the handler). */
  hasBody?: boolean;
}
