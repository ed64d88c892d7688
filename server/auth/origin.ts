/**
 * Which web origins may open a WebSocket to the hub and read its HTTP
 * answers (CORS), from one allow-list.
 *
 * Entries (checked by resolveAuthConfig):
 *   `https://app.example.com`  exactly that origin (scheme, host and port)
 *   `https://*.example.com`    any subdomain of example.com at any depth, same
 *                              scheme and port, but not example.com itself
 *   `*`                        every origin
 * An empty list allows every origin with auth off. With auth on it allows
 * same-origin pages only (the dashboard the hub serves: Origin names the
 * hub's own Host), so that a new hub with tokens starts without a list and
 * refuses cross-origin pages until they are listed.
 *
 * A request without an Origin header is not from a browser page (browsers
 * always send one on WebSocket upgrades and cross-origin fetches), so it is
 * allowed: the allow-list protects users' browsers, tokens protect the hub.
 * `Origin: null` (sandboxed frames, file://) is allowed only by `*`.
 *
 * CORS answers echo the request's origin (never `*`) with `Vary: Origin`,
 * and never `Access-Control-Allow-Credentials`: the hub reads bearer tokens,
 * not cookies, so there is no ambient credential to share.
 */
import { TributaryError } from '../../protocol/errors.ts';

export interface CorsOptions {
  allowMethods?: readonly string[];
  allowHeaders?: readonly string[];
  exposeHeaders?: readonly string[];
  /** How long a browser may cache a preflight answer. */
  maxAgeSec?: number;
}

const DEFAULT_CORS: Required<CorsOptions> = {
  /** The hub's methods; a preflight answers with its route's own (see preflightHeaders). */
  allowMethods: ['GET', 'POST', 'PATCH', 'DELETE', 'OPTIONS'],
  allowHeaders: ['Authorization', 'Content-Type', 'Accept'],
  exposeHeaders: ['Retry-After', 'Content-Type'],
  maxAgeSec: 600,
};

interface Wildcard {
  scheme: string;
  /** `.example.com`: the host must end with it and have something before it. */
  suffix: string;
  port: string;
}

const ORIGIN_RE = /^(https?):\/\/([^/:?#\s]+)(?::(\d{1,5}))?$/;

export class OriginPolicy {
  private readonly allowAll: boolean;
  private readonly emptyList: boolean;
  private readonly exact: ReadonlySet<string>;
  private readonly wildcards: readonly Wildcard[];
  private readonly cors: Required<CorsOptions>;

  /**
   * @param allowedOrigins the validated allow-list (AuthConfig.allowedOrigins)
   * @param authRequired   whether tokens are checked; an empty list means "all" only when they are not
   */
  /** Origins refused and already logged (bounded: a flood of made-up origins logs a bounded number of lines). */
  private readonly logged = new Set<string>();

  /**
   * @param onRefused called once per refused origin (up to 100), to log a
   *   line that names the setting to change
   */
  constructor(
    allowedOrigins: readonly string[],
    authRequired: boolean,
    cors: CorsOptions = {},
    private readonly onRefused?: (origin: string, message: string) => void,
  ) {
    this.emptyList = allowedOrigins.length === 0;
    this.allowAll = allowedOrigins.includes('*') || (allowedOrigins.length === 0 && !authRequired);
    const exact = new Set<string>();
    const wildcards: Wildcard[] = [];
    for (const entry of allowedOrigins) {
      const lower = entry.toLowerCase();
      const m = /^(https?):\/\/\*(\.[^/:]+)(?::(\d+))?$/.exec(lower);
      if (m) wildcards.push({ scheme: m[1], suffix: m[2], port: m[3] ?? '' });
      else if (lower !== '*') exact.add(lower);
    }
    this.exact = exact;
    this.wildcards = wildcards;
    this.cors = { ...DEFAULT_CORS, ...cors };
  }

  /**
   * Whether a request with this Origin header (undefined = none) may
   * proceed. `host` is the request's Host header: an Origin naming it is the
   * hub's own page (same origin), always allowed.
   */
  allows(origin: string | null | undefined, host?: string): boolean {
    if (origin === undefined || origin === null || origin === '') return true;
    if (this.allowAll) return true;
    const lower = origin.toLowerCase();
    if (this.exact.has(lower)) return true;
    const m = ORIGIN_RE.exec(lower);
    if (!m) return false;
    const [, scheme, hostname, port = ''] = m;
    if (host && (port ? `${hostname}:${port}` : hostname) === host.toLowerCase()) return true;
    return this.wildcards.some((w) => w.scheme === scheme && w.port === port && hostname.length > w.suffix.length && hostname.endsWith(w.suffix));
  }

  /** ORIGIN_FORBIDDEN for a disallowed origin (answer a WS upgrade or HTTP request with 403), else null. */
  check(origin: string | null | undefined, host?: string): TributaryError | null {
    if (this.allows(origin, host)) return null;
    const shown = JSON.stringify(String(origin).slice(0, 200));
    const message = this.emptyList
      ? `origin ${shown} is not allowed: with auth on and no allowedOrigins, only same-origin pages and clients that send no Origin are served; add it to allowedOrigins (TRIBUTARY_ALLOWED_ORIGINS, --allowed-origins)`
      : `origin ${shown} is not allowed: it is not in allowedOrigins (TRIBUTARY_ALLOWED_ORIGINS, --allowed-origins)`;
    if (this.onRefused && this.logged.size < 100 && !this.logged.has(shown)) {
      this.logged.add(shown);
      this.onRefused(String(origin).slice(0, 200), message);
    }
    return new TributaryError('ORIGIN_FORBIDDEN', message);
  }

  /**
   * Headers to add to an HTTP answer. Null when the origin is not allowed (do
   * not serve the request: answer 403 ORIGIN_FORBIDDEN without CORS headers).
   */
  corsHeaders(origin: string | null | undefined, host?: string): Record<string, string> | null {
    if (!this.allows(origin, host)) return null;
    if (origin === undefined || origin === null || origin === '') return { Vary: 'Origin' };
    return {
      'Access-Control-Allow-Origin': origin,
      'Access-Control-Expose-Headers': this.cors.exposeHeaders.join(', '),
      Vary: 'Origin',
    };
  }

  /**
   * Headers for the answer (204) to a CORS preflight (`OPTIONS` with
   * Access-Control-Request-Method). Null when the origin is not allowed.
   * `methods`: those of the route asked about (all of the hub's otherwise).
   */
  preflightHeaders(origin: string | null | undefined, host?: string, methods: readonly string[] = this.cors.allowMethods): Record<string, string> | null {
    const base = this.corsHeaders(origin, host);
    if (base === null) return null;
    if (!('Access-Control-Allow-Origin' in base)) return base;
    return {
      ...base,
      'Access-Control-Allow-Methods': methods.join(', '),
      'Access-Control-Allow-Headers': this.cors.allowHeaders.join(', '),
      'Access-Control-Max-Age': String(this.cors.maxAgeSec),
    };
  }
}

/** Whether an HTTP request is a CORS preflight rather than an ordinary OPTIONS. */
export function isPreflight(method: string, headers: { origin?: string; accessControlRequestMethod?: string }): boolean {
  return method.toUpperCase() === 'OPTIONS' && !!headers.origin && !!headers.accessControlRequestMethod;
}
