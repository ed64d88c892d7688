/**
 * HTTP plumbing over uWS: one exchange object per request that copies what
 * it needs out of the (stack-allocated) HttpRequest, tracks abort, reads a
 * capped body, and writes JSON or CBOR answers corked. Every error answer
 * goes through `fail`, the one mapping from TributaryError to status and
 * body.
 */
import { encodeCbor } from '../../protocol/codec.ts';
import { TributaryError, toTributaryError } from '../../protocol/errors.ts';
import type { HttpRequest, HttpResponse } from 'uWebSockets.js';

const STATUS_TEXT: Record<number, string> = {
  200: 'OK', 201: 'Created', 204: 'No Content', 400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found',
  405: 'Method Not Allowed', 408: 'Request Timeout', 409: 'Conflict', 413: 'Payload Too Large', 416: 'Range Not Satisfiable',
  429: 'Too Many Requests', 500: 'Internal Server Error', 503: 'Service Unavailable',
};

const statusLine = (status: number): string => `${status} ${STATUS_TEXT[status] ?? ''}`.trim();

export const CBOR_TYPE = 'application/cbor';
export const JSON_TYPE = 'application/json';

/**
 * The raw query string. The pure-Node fallback's getQuery() throws on every
 * request (it parses the path-only URL with `new URL`): read its Node request instead.
 */
export function queryOf(req: HttpRequest): string {
  try {
    return req.getQuery() ?? '';
  } catch {
    const url = (req as unknown as { request?: { url?: string } }).request?.url ?? '';
    const q = url.indexOf('?');
    return q < 0 ? '' : url.slice(q + 1);
  }
}

export interface ErrorReporter {
  (err: TributaryError, route: string): void;
}

export class Exchange {
  aborted = false;
  done = false;
  readonly method: string;
  readonly url: string;
  readonly query: URLSearchParams;
  readonly contentType: string;
  readonly accept: string;
  readonly authorization: string;
  readonly origin: string;
  /** Host header: with Origin, tells a same-origin page (the dashboard) from another site's. */
  readonly host: string;
  readonly accessControlRequestMethod: string;
  /** The raw query string (checked for tokens, which are refused in URLs). */
  readonly rawQuery: string;
  /** Bytes of the body read by readBody. */
  bodyBytes = 0;
  /** Headers added to every answer (CORS). */
  extraHeaders: Record<string, string> = {};
  /** Content-Length as declared (0 when absent or unreadable). */
  readonly contentLength: number;
  /** Route label for metrics (the pattern, not the URL). */
  route = 'unmatched';
  status = 0;

  constructor(
    readonly res: HttpResponse,
    req: HttpRequest,
    private readonly onError: ErrorReporter,
    private readonly onDone: (x: Exchange) => void,
  ) {
    this.method = req.getMethod().toUpperCase();
    this.url = req.getUrl();
    this.rawQuery = queryOf(req);
    this.query = new URLSearchParams(this.rawQuery);
    this.contentType = req.getHeader('content-type').toLowerCase();
    this.accept = req.getHeader('accept').toLowerCase();
    this.authorization = req.getHeader('authorization');
    this.origin = req.getHeader('origin');
    this.host = req.getHeader('host');
    this.accessControlRequestMethod = req.getHeader('access-control-request-method');
    const declared = Number(req.getHeader('content-length') || '0');
    this.contentLength = Number.isSafeInteger(declared) && declared > 0 ? declared : 0;
    res.onAborted(() => {
      this.aborted = true;
    });
  }

  get wantsCbor(): boolean {
    return this.accept.includes(CBOR_TYPE);
  }

  get sendsCbor(): boolean {
    return this.contentType.startsWith(CBOR_TYPE);
  }

  /**
   * The whole body, refused with BODY_TOO_LARGE as soon as it passes
   * `maxBytes` (by Content-Length when given, else while streaming). The
   * chunks uWS hands over are only valid during the callback: copied.
   */
  readBody(maxBytes: number): Promise<Uint8Array> {
    return new Promise((resolve, reject) => {
      if (this.contentLength > maxBytes) {
        reject(new TributaryError('BODY_TOO_LARGE', `body of ${this.contentLength} bytes exceeds ${maxBytes}`, { maxBytes }));
        return;
      }
      const chunks: Uint8Array[] = [];
      let total = 0;
      let refused = false;
      this.res.onData((chunk, isLast) => {
        if (refused) return;
        total += chunk.byteLength;
        if (total > maxBytes) {
          refused = true;
          reject(new TributaryError('BODY_TOO_LARGE', `body exceeds ${maxBytes} bytes`, { maxBytes }));
          return;
        }
        chunks.push(new Uint8Array(chunk.slice(0)));
        if (isLast) {
          this.bodyBytes = total;
          if (chunks.length === 1) resolve(chunks[0]);
          else {
            const out = new Uint8Array(total);
            let pos = 0;
            for (const c of chunks) {
              out.set(c, pos);
              pos += c.length;
            }
            resolve(out);
          }
        }
      });
    });
  }

  /** Answers with a JSON (or, when accepted, CBOR) body. */
  send(status: number, body: unknown, headers: Record<string, string> = {}): void {
    if (body === undefined) {
      this.write(status, undefined, undefined, headers);
      return;
    }
    if (this.wantsCbor) this.write(status, encodeCbor(body), CBOR_TYPE, headers);
    else this.write(status, JSON.stringify(body), JSON_TYPE, headers);
  }

  sendText(status: number, body: string, contentType: string): void {
    this.write(status, body, contentType, {});
  }

  /** An answer without a body (204 to a CORS preflight). */
  sendEmpty(status: number, headers: Record<string, string>): void {
    this.write(status, undefined, undefined, headers);
  }

  /** The one error mapping: TributaryError → status, JSON (or CBOR) body, Retry-After for retriable 429/503. */
  fail(err: unknown, closeConnection = false): void {
    const e = toTributaryError(err);
    this.onError(e, this.route);
    const headers: Record<string, string> = {};
    const retryAfterMs = e.details?.retryAfterMs;
    if (typeof retryAfterMs === 'number') headers['retry-after'] = String(Math.max(1, Math.ceil(retryAfterMs / 1000)));
    else if (e.status === 503) headers['retry-after'] = '1';
    if (e.code === 'METHOD_NOT_ALLOWED' && typeof e.details?.allow === 'string') headers.allow = e.details.allow;
    // RFC 6750 §3: a 401 names the scheme, and for a bad token says so.
    if (e.status === 401) headers['www-authenticate'] = e.code === 'UNAUTHENTICATED' ? 'Bearer realm="tributary"' : 'Bearer realm="tributary", error="invalid_token"';
    const body = e.toJSON();
    if (this.wantsCbor) this.write(e.status, encodeCbor(body), CBOR_TYPE, headers, closeConnection);
    else this.write(e.status, JSON.stringify(body), JSON_TYPE, headers, closeConnection);
  }

  private write(status: number, body: string | Uint8Array | undefined, contentType: string | undefined, headers: Record<string, string>, closeConnection = false): void {
    if (this.aborted || this.done) return;
    this.done = true;
    this.status = status;
    this.res.cork(() => {
      this.res.writeStatus(statusLine(status));
      if (contentType) this.res.writeHeader('content-type', contentType);
      for (const [k, v] of Object.entries(this.extraHeaders)) this.res.writeHeader(k, v);
      for (const [k, v] of Object.entries(headers)) this.res.writeHeader(k, v);
      this.res.end(body, closeConnection);
    });
    this.onDone(this);
  }
}
