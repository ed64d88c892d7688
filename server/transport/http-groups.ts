/**
 * The consumer-group routes of the HTTP API (docs/http-api.md): list with
 * lag, describe one group, reset its offsets, delete it. Reset and delete
 * are refused with CONFLICT while the group has members, as Kafka's tools do.
 * A principal sees and manages the groups it may join (an admin, all).
 */
import { TributaryError } from '../../protocol/errors.ts';
import type { ResetTarget } from '../broker/group-admin.ts';
import { authorize } from './authorize.ts';
import type { RouteSpec } from './route-spec.ts';
import type { TransportDeps } from './transport-deps.ts';

export function groupRoutes(deps: TransportDeps): RouteSpec[] {
  const admin = deps.broker.groupAdmin;
  return [
    {
      method: 'get',
      pattern: '/v1/groups',
      handler: (x, _p, principal) => {
        x.send(200, { groups: admin.list().filter((g) => principal.admin || principal.canJoin(g.group)) });
      },
    },
    {
      method: 'get',
      pattern: '/v1/groups/:group',
      handler: (x, [group], principal) => {
        if (!principal.admin) authorize(principal, 'join', group);
        x.send(200, admin.describe(group));
      },
    },
    {
      method: 'post',
      pattern: '/v1/groups/:group/reset',
      hasBody: true,
      handler: async (x, [group], principal, body) => {
        if (!principal.admin) authorize(principal, 'join', group);
        const doc = await body();
        if (typeof doc.topic !== 'string') throw new TributaryError('BAD_REQUEST', 'topic is required');
        if (!principal.admin) authorize(principal, 'consume', doc.topic);
        const partitions = partitionsOf(doc.partitions);
        const offsets = await admin.reset(group, doc.topic, resetTargetOf(doc.to), partitions);
        x.send(200, { offsets });
      },
    },
    {
      method: 'del',
      pattern: '/v1/groups/:group',
      handler: async (x, [group], principal) => {
        if (!principal.admin) authorize(principal, 'join', group);
        await admin.delete(group);
        x.send(204, undefined);
      },
    },
  ];
}

function resetTargetOf(to: unknown): ResetTarget {
  if (to === 'earliest' || to === 'latest') return to;
  if (typeof to === 'object' && to !== null && !Array.isArray(to)) {
    const o = to as Record<string, unknown>;
    if (typeof o.offset === 'number' && Number.isSafeInteger(o.offset) && o.offset >= 0) return { offset: o.offset };
    if (typeof o.timestamp === 'number' && Number.isSafeInteger(o.timestamp) && o.timestamp >= 0) return { timestamp: o.timestamp };
  }
  throw new TributaryError('BAD_REQUEST', 'to must be "earliest", "latest", {"offset": n} or {"timestamp": ms}');
}

function partitionsOf(x: unknown): number[] | undefined {
  if (x === undefined || x === null) return undefined;
  if (!Array.isArray(x) || x.length === 0 || !x.every((p) => Number.isSafeInteger(p) && p >= 0)) throw new TributaryError('BAD_REQUEST', 'partitions must be a non-empty array of partition numbers');
  return [...new Set(x as number[])];
}
