/**
 * The status endpoints of a runtime, as an HTTP handler: GET /v1/connectors
 * (JSON) and GET /metrics (Prometheus). `tributary connect --http-port`
 * serves them with node:http; the hub serves the same answers on its port.
 */
import http from 'node:http';
import type { ConnectorRuntime } from './runtime.ts';

function connectorsAnswer(runtime: ConnectorRuntime): { connectors: ReturnType<ConnectorRuntime['status']> } {
  return { connectors: runtime.status() };
}

export function serveStatus(runtime: ConnectorRuntime, host: string, port: number): Promise<http.Server> {
  const server = http.createServer((req, res) => {
    void (async () => {
      const url = new URL(req.url ?? '/', 'http://x');
      if (req.method === 'GET' && url.pathname === '/v1/connectors') {
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(connectorsAnswer(runtime)));
      } else if (req.method === 'POST' && /^\/v1\/connectors\/[^/]+\/(pause|resume)$/.test(url.pathname)) {
        const [, , , name, action] = url.pathname.split('/');
        const status = runtime.control(decodeURIComponent(name), action as 'pause' | 'resume');
        if (status) res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(status));
        else res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { code: 'NOT_FOUND', message: `no connector named ${name}`, retriable: false } }));
      } else if (req.method === 'GET' && url.pathname === '/metrics') {
        res.writeHead(200, { 'content-type': runtime.registry.contentType }).end(await runtime.registry.metrics());
      } else {
        res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { code: 'NOT_FOUND', message: 'not found', retriable: false } }));
      }
    })().catch(() => res.writeHead(500).end());
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve(server));
  });
}
