/**
 * The transport: one uWS app serving the WebSocket endpoint and the HTTP API
 * on one port. The only place (with its helpers here) that knows uWS.
 */
import type { TemplatedApp, us_listen_socket } from 'uWebSockets.js';
import { registerHttpRoutes } from './http-routes.ts';
import type { TransportDeps } from './transport-deps.ts';
import { loadUws, type LoadedUws } from './uws.ts';
import { WsEndpoint } from './ws-endpoint.ts';

export class TransportError extends Error {
  override name = 'TransportError';
}

export class Transport {
  readonly loaded: LoadedUws;
  private readonly ws: WsEndpoint;
  private listenSocket: us_listen_socket | null = null;
  private sweepTimer: NodeJS.Timeout | null = null;

  /** Throws TransportError when only uWS's pure-Node fallback is available and the operator did not allow it. */
  constructor(private readonly deps: TransportDeps) {
    this.loaded = loadUws();
    if (!this.loaded.native && !deps.config.allowFallbackTransport) {
      throw new TransportError(
        `${this.loaded.description}. The fallback is many times slower than the native server; refusing to start. ` +
          'Use a platform/Node version with a native uWebSockets.js binary (Linux x64, Node 20), unset UWS_USE_FALLBACK, ' +
          'or pass --allow-fallback-transport (TRIBUTARY_ALLOW_FALLBACK_TRANSPORT=1) to run anyway.',
      );
    }
    this.ws = new WsEndpoint(deps);
  }

  get connectionCount(): number {
    return this.ws.connections.size;
  }

  /** Binds host:port (0 = any free port) and resolves with the real port. */
  listen(host: string, port: number): Promise<number> {
    const { uws } = this.loaded;
    const tls = this.deps.config.tls;
    let app: TemplatedApp;
    try {
      app = tls ? uws.SSLApp({ cert_file_name: tls.certFile, key_file_name: tls.keyFile }) : uws.App();
    } catch (err) {
      return Promise.reject(new TransportError(`cannot start TLS with ${tls?.certFile} and ${tls?.keyFile}: ${err instanceof Error ? err.message : String(err)}`));
    }
    app.ws('/v1/ws', this.ws.behavior(uws));
    registerHttpRoutes(app, this.deps);
    return new Promise((resolve, reject) => {
      app.listen(host, port, (socket) => {
        if (!socket) {
          reject(new TransportError(`cannot listen on ${host}:${port} (address in use or not available)`));
          return;
        }
        this.listenSocket = socket;
        const sweepMs = Math.max(50, Math.min(1000, Math.floor(Math.min(this.deps.config.slowConsumerTimeoutMs, this.deps.limits.settings.idleTimeoutMs) / 4)));
        this.sweepTimer = setInterval(() => {
          const now = Date.now();
          this.ws.sweep(now);
          this.deps.limits.sweep(now);
        }, sweepMs);
        this.sweepTimer.unref();
        resolve(uws.us_socket_local_port(socket));
      });
    });
  }

  /** Stop accepting connections; open ones stay until closeConnections(). */
  stopAccepting(): void {
    if (this.listenSocket) {
      this.loaded.uws.us_listen_socket_close(this.listenSocket);
      this.listenSocket = null;
    }
  }

  closeConnections(): void {
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    this.sweepTimer = null;
    this.ws.closeAll();
  }
}
