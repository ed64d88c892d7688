/**
 * HTTP plumbing over uWS: one exchange object per request that copies what
 * it needs out of the (stack-allocated) HttpRequest, tracks abort, reads a
 * capped body, and writes JSON or CBOR answers corked. Every error answer
 * goes through `fail`, the one mapping from TributaryError to status and
 * body.
 */
import { encodeCbor } from '../../protocol/codec.ts';
import { TributaryError, errorAnswer, toTributaryError } from '../../protocol/errors.ts';
import type { HttpRequest, HttpResponse } from 'uWebSockets.js';

/**
 * Largest HTTP request header block the hub serves (431 beyond): room for a
 * maxTokenBytes (16 KiB) bearer token and the usual headers. It applies to
 * blocks uWS parsed whole; uWS itself (20.30) keeps at most 4 KiB of a block
 * that arrives over several reads and drops the connection, unanswered,
 * beyond that (docs/security.md).
 */
const MAX_HTTP_HEADER_BYTES = 24 * 1024;

const STATUS_TEXT: Record<number, string> = {
  200: 'OK',
  201: 'Created',
  204: 'No Content',
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  408: 'Request Timeout',
  409: 'Conflict',
  413: 'Payload Too Large',
  416: 'Range Not Satisfiable',
  429: 'Too Many Requests',
  431: 'Request Header Fields Too Large',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
};

const statusLine = (status: number): string => `${status} ${STATUS_TEXT[status] ?? ''}`.trim();

const CBOR_TYPE = 'application/cbor';
const JSON_TYPE = 'application/json';

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

/** What a request's header block says about its framing and size; null when both are fine. One pass over the headers uWS parsed. */
function framingErrorOf(req: HttpRequest): TributaryError | null {
  let bytes = 0;
  let contentLengths = 0;
  let transferEncoding = false;
  try {
    req.forEach((name, value) => {
      bytes += name.length + value.length + 4; // ": " and CRLF
      if (name === 'content-length') contentLengths++;
      else if (name === 'transfer-encoding') transferEncoding = true;
    });
  } catch {
    // The pure-Node fallback transport (allowFallbackTransport) throws "Not implemented" here: it frames requests itself.
    return null;
  }
  if (bytes > MAX_HTTP_HEADER_BYTES) {
    return new TributaryError('HEADERS_TOO_LARGE', `request header block of ${bytes} bytes exceeds ${MAX_HTTP_HEADER_BYTES}`, { maxBytes: MAX_HTTP_HEADER_BYTES });
  }
  if (contentLengths > 1) return new TributaryError('BAD_REQUEST', 'more than one Content-Length header (RFC 9112 §6.3): the body cannot be framed');
  if (contentLengths === 1 && transferEncoding) return new TributaryError('BAD_REQUEST', 'both Content-Length and Transfer-Encoding (RFC 9112 §6.3): the body cannot be framed');
  return null;
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
  /**
   * Set when the request's framing cannot be trusted (RFC 9112 §6.3: two
   * Content-Length headers, or Content-Length beside Transfer-Encoding, is
   * how request smuggling starts) or its header block is over the limit:
   * answered with this error, and the connection closed, whatever the route.
   */
  readonly framingError: TributaryError | null;
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
    this.framingError = framingErrorOf(req);
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

  /** A static file (the dashboard's), with its type and caching. */
  sendFile(file: { body: Uint8Array; contentType: string; cacheControl: string }): void {
    this.write(200, file.body, file.contentType, { 'cache-control': file.cacheControl });
  }

  /** An answer without a body (204 to a CORS preflight). */
  sendEmpty(status: number, headers: Record<string, string>): void {
    this.write(status, undefined, undefined, headers);
  }

  /** Answers an error as protocol/errors.ts's errorAnswer maps it (JSON or CBOR body). */
  fail(err: unknown, closeConnection = false): void {
    const e = toTributaryError(err);
    closeConnection ||= this.framingError !== null;
    this.onError(e, this.route);
    const { status, headers, body } = errorAnswer(e);
    if (this.wantsCbor) this.write(status, encodeCbor(body), CBOR_TYPE, headers, closeConnection);
    else this.write(status, JSON.stringify(body), JSON_TYPE, headers, closeConnection);
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
