/**
 * A member that does not confirm a revocation within the rebalance timeout
 * is expelled (its subscription ends with FENCED), its partitions move on at
 * once, and the web client joins again as a new member.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Hub } from '../../harness/hub.ts';
import { createTopic, groupView, member, startGroupHub, waitFor, type TestMember } from './support.ts';

let hub: Hub;
const members: TestMember[] = [];

beforeAll(async () => {
  hub = await startGroupHub({ args: ['--groups-rebalance-timeout-ms', '1000'] });
});
afterAll(async () => {
  await Promise.all(members.map((m) => m.client.close()));
  await hub?.stop();
  hub?.cleanup();
});

it('a member stuck in onRevoke past the rebalance timeout is expelled and rejoins as a new member', async () => {
  await createTopic(hub.url, 'stuck', 4);
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  let revokes = 0;
  const a = member(hub.wsUrl, 'stuck-a', 'stuck', 'stuckers', {
    onRevoke: async () => {
      if (revokes++ === 0) await gate; // the first revocation never finishes in time
    },
  });
  members.push(a);
  await waitFor(() => a.sub.assignment().length === 4, 10_000, 'a to hold everything');
  const first = (await groupView(hub.url, 'stuckers'))!.members[0].member;

  const b = member(hub.wsUrl, 'stuck-b', 'stuck', 'stuckers');
  members.push(b);
  // a never confirms: after the rebalance timeout it is out, and b holds everything for a moment.
  await waitFor(async () => !(await groupView(hub.url, 'stuckers'))!.members.some((m) => m.member === first), 10_000, 'a to be expelled');
  release();
  await waitFor(() => a.sub.assignment().length === 2 && b.sub.assignment().length === 2, 15_000, 'a 2/2 split with a as a new member');
  const view = (await groupView(hub.url, 'stuckers'))!;
  expect(view.members).toHaveLength(2);
  expect(view.members.map((m) => m.member)).not.toContain(first);
  expect(view.state).toBe('stable');
  expect([...a.sub.assignment(), ...b.sub.assignment()].sort()).toEqual([0, 1, 2, 3]);
});
