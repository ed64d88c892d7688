/**
 * The HTTP API on the WebSocket's port (docs/http-api.md). Each route names
 * its method and pattern once; the same pattern with another method answers
 * 405 with Allow, an unknown path 404, both with the JSON error body. Every
 * request passes HttpGuard (URL tokens, Origin and CORS, bearer token)
 * first; each route checks what its principal may do.
 */
import { TributaryError } from '../../protocol/errors.ts';
import { ackOffsets } from '../../protocol/frames.ts';
import { anonymousPrincipal, type Principal } from '../auth/index.ts';
import type { TemplatedApp, HttpRequest, HttpResponse } from 'uWebSockets.js';
import { loadDashboardFiles, type DashboardFiles } from './dashboard-files.ts';
import { HttpGuard } from './http-auth.ts';
import { groupRoutes } from './http-groups.ts';
import { isInternalTopic } from '../broker/group-offsets.ts';
import { Exchange } from './http-io.ts';
import { parseBody, produceRequestFromBody, queryInt, recordsAnswer } from './http-records.ts';
import { authorize } from './authorize.ts';
import type { Method, RouteSpec } from './route-spec.ts';
import type { TransportDeps } from './transport-deps.ts';

const METHOD_NAME: Record<Method, string> = { get: 'GET', post: 'POST', patch: 'PATCH', del: 'DELETE' };

/** What every route shares: the hub's parts, the guard, and the error and request counters. */
interface RouteContext {
  deps: TransportDeps;
  guard: HttpGuard;
  onError: (err: TributaryError) => void;
  onDone: (x: Exchange) => void;
}

export function registerHttpRoutes(app: TemplatedApp, deps: TransportDeps): void {
  const ctx: RouteContext = {
    deps,
    guard: new HttpGuard(deps),
    onError: (err) => {
      deps.metrics.countError(err.code);
      if (err.code === 'INTERNAL') deps.log.error({ err: err.message }, 'HTTP request failed');
    },
    onDone: (x) => deps.metrics.httpRequests.inc({ route: x.route, status: String(x.status) }),
  };
  const routes = [...pageAndHealthRoutes(deps, readDashboard(deps)), ...topicRoutes(deps), ...recordRoutes(deps)];
  const methodsByPattern = new Map<string, string[]>();
  for (const r of routes) {
    const list = methodsByPattern.get(r.pattern) ?? [];
    list.push(METHOD_NAME[r.method]);
    methodsByPattern.set(r.pattern, list);
    app[r.method](r.pattern, (res, req) => serveRoute(ctx, res, req, r));
  }
  registerRefusals(app, ctx, methodsByPattern);
}

/** The built dashboard, read once at start-up (it is static); `missing` says why when it is not there. */
function readDashboard(deps: TransportDeps): DashboardFiles {
  const dashboard = loadDashboardFiles();
  if (dashboard.missing) deps.log.warn(`${dashboard.missing}: GET / answers 404`);
  return dashboard;
}

/** The dashboard page, liveness, readiness and metrics: served before recovery ends, without a token. */
function pageAndHealthRoutes(deps: TransportDeps, dashboard: DashboardFiles): RouteSpec[] {
  const { metrics } = deps;
  return [
    {
      method: 'get',
      pattern: '/',
      always: true,
      open: true,
      handler: (x) => {
        if (!dashboard.index) throw new TributaryError('NOT_FOUND', dashboard.missing);
        x.sendFile(dashboard.index);
      },
    },
    {
      method: 'get',
      pattern: '/assets/*',
      always: true,
      open: true,
      handler: (x) => {
        const file = dashboard.assets.get(x.url);
        if (!file) throw new TributaryError('NOT_FOUND', dashboard.index ? `no dashboard file ${x.url}` : dashboard.missing);
        x.sendFile(file);
      },
    },
    { method: 'get', pattern: '/livez', always: true, open: true, handler: (x) => x.send(200, { status: 'live' }) },
    {
      method: 'get',
      pattern: '/healthz',
      always: true,
      open: true,
      handler: (x) => {
        if (deps.state.shuttingDown) x.send(503, { status: 'shutting-down' }, { 'retry-after': '1' });
        else if (!deps.state.ready) x.send(503, { status: 'recovering' }, { 'retry-after': '1' });
        else {
          // Damage found in the files is served around, not hidden: the rest of the log stays available.
          const problems = deps.broker.storageProblems();
          x.send(200, problems.length ? { status: 'degraded', storageProblems: problems.map((p) => p.message) } : { status: 'ok' });
        }
      },
    },
    {
      method: 'get',
      pattern: '/metrics',
      always: true,
      // Open like /healthz: counts and rates, no records and no tokens; keep the port off the internet or filter it at the proxy.
      open: true,
      handler: async (x) => {
        const m = await metrics.render();
        x.sendText(200, m.body, m.contentType);
      },
    },
  ];
}

function topicRoutes(deps: TransportDeps): RouteSpec[] {
  const { broker } = deps;
  return [
    {
      method: 'get',
      pattern: '/v1/connectors',
      handler: (x, _p, principal) => {
        authorize(principal, 'admin');
        x.send(200, { connectors: deps.connectors?.status() ?? [] });
      },
    },
    ...(['pause', 'resume'] as const).map((action) => ({
      method: 'post' as const,
      pattern: `/v1/connectors/:name/${action}`,
      handler: (x: Exchange, [name]: string[], principal: Principal) => {
        authorize(principal, 'admin');
        const status = deps.connectors?.control(name, action);
        if (status === undefined) throw new TributaryError('NOT_FOUND', `no connector named ${JSON.stringify(name.slice(0, 100))}`);
        x.send(200, status);
      },
    })),
    {
      method: 'get',
      pattern: '/v1/topics',
      handler: (x, _p, principal) => {
        // Not an error for anyone: each principal sees the topics it may consume or produce to (an admin, all).
        // Internal topics (__consumer_offsets) only when asked for.
        const internal = x.query.get('internal') === 'true';
        const topics = broker.topics.list().filter((t) => (internal || !isInternalTopic(t.name)) && (principal.admin || principal.canConsume(t.name) || principal.canProduce(t.name)));
        x.send(200, { topics });
      },
    },
    {
      method: 'post',
      pattern: '/v1/topics',
      hasBody: true,
      handler: async (x, _p, principal, body) => {
        authorize(principal, 'admin');
        const doc = await body();
        const info = await broker.topics.create(doc.name, doc.partitions, doc.config);
        x.send(201, broker.topics.describe(info.name));
      },
    },
    {
      method: 'get',
      pattern: '/v1/topics/:topic',
      handler: (x, [topic], principal) => {
        if (!principal.admin && !principal.canConsume(topic) && !principal.canProduce(topic)) authorize(principal, 'consume', topic);
        x.send(200, broker.topics.describe(topic));
      },
    },
    {
      method: 'patch',
      pattern: '/v1/topics/:topic',
      hasBody: true,
      handler: async (x, [topic], principal, body) => {
        authorize(principal, 'admin');
        const doc = await body();
        for (const k of Object.keys(doc)) {
          if (k !== 'partitions' && k !== 'config') throw new TributaryError('BAD_CONFIG', `unknown field ${JSON.stringify(k)}: PATCH takes partitions and config`);
        }
        const { warnings } = await broker.topics.update(topic, { partitions: doc.partitions, config: doc.config });
        x.send(200, { ...broker.topics.describe(topic), warnings });
      },
    },
    {
      method: 'del',
      pattern: '/v1/topics/:topic',
      handler: async (x, [topic], principal) => {
        authorize(principal, 'admin');
        await broker.topics.delete(topic);
        x.send(204, undefined);
      },
    },
  ];
}

function recordRoutes(deps: TransportDeps): RouteSpec[] {
  const { broker, config } = deps;
  return [
    {
      method: 'post',
      pattern: '/v1/topics/:topic/records',
      hasBody: true,
      handler: async (x, [topic], principal, body) => {
        authorize(principal, 'produce', topic);
        if (isInternalTopic(topic)) throw new TributaryError('FORBIDDEN', `${topic} is an internal topic: clients cannot produce to it`, { resource: topic });
        const doc = await body();
        const req = produceRequestFromBody(topic, doc, x.sendsCbor);
        const limited = deps.limits.admitHttpProduce(principal, x.bodyBytes, req.records.length);
        if (limited) throw limited;
        const res = await broker.produce(req);
        const offsets = ackOffsets(res, req.records.length);
        x.send(200, res.duplicate ? { offsets, duplicate: true } : { offsets });
      },
    },
    {
      method: 'get',
      pattern: '/v1/topics/:topic/partitions/:partition/records',
      handler: async (x, [topic, partition], principal) => {
        authorize(principal, 'consume', topic);
        if (!/^\d{1,4}$/.test(partition)) throw new TributaryError('BAD_PARTITION', `partition must be a number, got ${JSON.stringify(partition.slice(0, 20))}`);
        const q = x.query;
        const offset = queryInt(q, 'offset');
        const timestamp = queryInt(q, 'timestamp');
        if (offset !== undefined && timestamp !== undefined) throw new TributaryError('BAD_REQUEST', 'give offset or timestamp, not both');
        const limit = Math.min(queryInt(q, 'limit') ?? config.httpReadDefaultRecords, config.httpReadMaxRecords);
        const maxBytes = Math.min(queryInt(q, 'maxBytes') ?? config.httpReadMaxBytes, config.httpReadMaxBytes);
        if (limit === 0 || maxBytes === 0) throw new TributaryError('BAD_REQUEST', 'limit and maxBytes must be at least 1');
        const res = await broker.fetch({ topic, partition: Number(partition), offset, timestamp, limit, maxBytes });
        x.send(200, recordsAnswer(res.records, res.nextOffset, res.highWatermark, x.wantsCbor));
      },
    },
    ...groupRoutes(deps),
  ];
}

/** 405 with Allow for a known path with another method; 404 for an unknown path; both after the guard. */
function registerRefusals(app: TemplatedApp, ctx: RouteContext, methodsByPattern: Map<string, string[]>): void {
  const { guard, onError, onDone } = ctx;
  for (const [pattern, methods] of methodsByPattern) {
    const allow = methods.join(', ');
    const preflightMethods = [...methods, 'OPTIONS'];
    app.any(pattern, (res, req) => {
      const x = new Exchange(res, req, onError, onDone);
      x.route = pattern;
      try {
        if (guard.preflight(x, preflightMethods)) return;
        guard.admit(x);
        x.fail(new TributaryError('METHOD_NOT_ALLOWED', `${x.method} is not allowed on ${pattern}; allowed: ${allow}`, { allow }));
      } catch (err) {
        x.fail(err);
      }
    });
  }
  app.any('/*', (res, req) => {
    const x = new Exchange(res, req, onError, onDone);
    try {
      guard.admit(x);
      x.fail(new TributaryError('NOT_FOUND', `no route ${x.method} ${x.url}`));
    } catch (err) {
      x.fail(err);
    }
  });
}

function serveRoute(ctx: RouteContext, res: HttpResponse, req: HttpRequest, r: RouteSpec): void {
  const { deps, guard, onError, onDone } = ctx;
  const { config } = deps;
  const x = new Exchange(res, req, onError, onDone);
  x.route = r.pattern;
  // uWS wants onData attached before the handler returns: start reading the body now.
  let bodyPromise: Promise<Record<string, unknown>> | null = null;
  if (r.hasBody) {
    bodyPromise = x.readBody(config.maxHttpBodyBytes).then((b) => parseBody(b, x.sendsCbor));
    bodyPromise.catch(() => undefined); // answered where awaited
  }
  const body = (): Promise<Record<string, unknown>> => bodyPromise ?? Promise.reject(new TributaryError('BAD_REQUEST', 'this route takes no body'));
  let result: Promise<void>;
  try {
    guard.admit(x);
    const params = routeParams(req, r.pattern);
    if (!r.always && (!deps.state.ready || deps.state.shuttingDown)) {
      throw new TributaryError(deps.state.shuttingDown ? 'SHUTTING_DOWN' : 'NOT_READY', deps.state.shuttingDown ? undefined : 'hub is recovering its data; retry shortly');
    }
    const principal = r.open ? Promise.resolve(anonymousPrincipal()) : guard.principal(x);
    result = principal.then((p) => r.handler(x, params, p, body));
  } catch (err) {
    result = Promise.reject(err);
  }
  result.catch((err: unknown) => {
    // A body refused mid-stream leaves unread bytes behind: close the connection after answering.
    x.fail(err, err instanceof TributaryError && err.code === 'BODY_TOO_LARGE');
  });
}

/** The `:name` parameters of a route, URL-decoded; BAD_REQUEST for malformed escapes. */
function routeParams(req: HttpRequest, pattern: string): string[] {
  const count = pattern.split(':').length - 1;
  const params: string[] = [];
  for (let i = 0; i < count; i++) {
    const raw = req.getParameter(i) ?? '';
    try {
      params.push(decodeURIComponent(raw));
    } catch {
      throw new TributaryError('BAD_REQUEST', `malformed percent-encoding in ${JSON.stringify(raw.slice(0, 40))}`);
    }
  }
  return params;
}
