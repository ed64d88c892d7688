/**
 * The group state machine as a table of transitions, and the sticky
 * assignor's promises: balanced to within one, every partition once, and
 * few moves when members come and go.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { GroupState, type AssignmentOut } from '../../server/broker/group-state.ts';
import { assignSticky } from '../../server/broker/sticky-assignor.ts';

type Step = { do: 'join'; id: string; partitions?: number } | { do: 'remove'; id: string } | { do: 'confirm'; id: string; generation: number } | { do: 'grow'; partitions: number };

interface Row {
  name: string;
  given: Step[];
  when: Step;
  state: 'empty' | 'stable' | 'rebalancing';
  generation: number;
  /** member → what the assignments of `when` told it: [whole set, revoked] */
  sent: Record<string, [number[], number[]]>;
  /** member → what it holds (assigned) afterwards */
  holds?: Record<string, number[]>;
}

function run(s: GroupState, step: Step): AssignmentOut[] {
  switch (step.do) {
    case 'join':
      return s.join(step.id, 't', step.partitions ?? 4, 0);
    case 'remove':
      return s.remove(step.id, 0);
    case 'confirm':
      return s.confirm(step.id, step.generation, 0);
    case 'grow':
      return s.setPartitionCount('t', step.partitions, 0);
  }
}

const TABLE: Row[] = [
  { name: 'empty → stable: the first member gets everything', given: [], when: { do: 'join', id: 'a' }, state: 'stable', generation: 1, sent: { a: [[0, 1, 2, 3], []] } },
  {
    name: 'stable → rebalancing: a join revokes from the holder first; the newcomer gets nothing yet',
    given: [{ do: 'join', id: 'a' }],
    when: { do: 'join', id: 'b' },
    state: 'rebalancing',
    generation: 2,
    sent: {
      a: [
        [0, 1],
        [2, 3],
      ],
    },
    holds: { a: [0, 1], b: [] },
  },
  {
    name: 'rebalancing → stable: the confirm hands the revoked partitions on',
    given: [
      { do: 'join', id: 'a' },
      { do: 'join', id: 'b' },
    ],
    when: { do: 'confirm', id: 'a', generation: 2 },
    state: 'stable',
    generation: 2,
    sent: { b: [[2, 3], []] },
    holds: { a: [0, 1], b: [2, 3] },
  },
  {
    name: 'a stale confirm (older generation than the revocation) frees nothing',
    given: [
      { do: 'join', id: 'a' },
      { do: 'join', id: 'b' },
    ],
    when: { do: 'confirm', id: 'a', generation: 1 },
    state: 'rebalancing',
    generation: 2,
    sent: {},
  },
  {
    name: 'stable → stable: a leave frees its partitions at once (no confirm needed)',
    given: [
      { do: 'join', id: 'a' },
      { do: 'join', id: 'b' },
      { do: 'confirm', id: 'a', generation: 2 },
    ],
    when: { do: 'remove', id: 'b' },
    state: 'stable',
    generation: 3,
    sent: { a: [[0, 1, 2, 3], []] },
  },
  {
    name: 'rebalancing → stable: the revoking member expires; its pending partitions are free',
    given: [
      { do: 'join', id: 'a' },
      { do: 'join', id: 'b' },
    ],
    when: { do: 'remove', id: 'a' },
    state: 'stable',
    generation: 3,
    sent: { b: [[0, 1, 2, 3], []] },
  },
  { name: 'stable → empty: the last member leaves', given: [{ do: 'join', id: 'a' }], when: { do: 'remove', id: 'a' }, state: 'empty', generation: 2, sent: {} },
  {
    name: 'stable → stable: a grown topic gives the new partitions out without moving others',
    given: [
      { do: 'join', id: 'a' },
      { do: 'join', id: 'b' },
      { do: 'confirm', id: 'a', generation: 2 },
    ],
    when: { do: 'grow', partitions: 6 },
    state: 'stable',
    generation: 3,
    sent: { a: [[0, 1, 4], []], b: [[2, 3, 5], []] },
  },
  {
    name: 'a third member takes one from each, revoked cooperatively',
    given: [
      { do: 'join', id: 'a', partitions: 6 },
      { do: 'join', id: 'b', partitions: 6 },
      { do: 'confirm', id: 'a', generation: 2 },
    ],
    when: { do: 'join', id: 'c', partitions: 6 },
    state: 'rebalancing',
    generation: 3,
    sent: { a: [[0, 1], [2]], b: [[3, 4], [5]] },
    holds: { c: [] },
  },
];

describe('group state transitions', () => {
  for (const row of TABLE) {
    it(row.name, () => {
      const s = new GroupState();
      for (const step of row.given) run(s, step);
      const outs = run(s, row.when);
      expect(s.state).toBe(row.state);
      expect(s.generation).toBe(row.generation);
      const sent = Object.fromEntries(outs.map((o) => [o.member, [o.partitions, o.revoked]]));
      expect(sent).toEqual(row.sent);
      for (const [id, parts] of Object.entries(row.holds ?? {})) expect([...s.members.get(id)!.assigned].sort()).toEqual(parts);
    });
  }

  it('fences commits: only a live owner, from the generation that gave it the partition on', () => {
    const s = new GroupState();
    s.join('a', 't', 4, 0);
    s.join('b', 't', 4, 0); // gen 2: a must give up 2, 3
    expect(s.mayCommit('a', 2, 2)).toBe(true); // pending: a may still commit what it finished
    s.confirm('a', 2, 0);
    expect(s.mayCommit('a', 2, 2)).toBe(false);
    expect(s.mayCommit('b', 2, 2)).toBe(true);
    expect(s.mayCommit('b', 2, 1)).toBe(false); // an older generation than the one that gave it
    expect(s.mayCommit('b', 2, undefined)).toBe(true);
    s.remove('b', 0);
    expect(s.mayCommit('b', 2, 2)).toBe(false);
  });

  it('expels nobody until a revocation waits longer than the rebalance timeout', () => {
    const s = new GroupState();
    s.join('a', 't', 4, 0);
    s.join('b', 't', 4, 500);
    expect(s.overdue(1000, 30_000)).toEqual([]);
    expect(s.overdue(30_400, 30_000)).toEqual([]);
    expect(s.overdue(30_600, 30_000)).toEqual(['a']);
  });
});

describe('sticky assignor', () => {
  it('balances to within one, gives every partition once, and keeps what it can', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 64 }), fc.integer({ min: 1, max: 20 }), fc.integer({ min: 0, max: 20 }), (n, before, after) => {
        const m0 = Array.from({ length: before }, (_, i) => `m${i}`);
        const first = assignSticky(n, m0, new Map());
        const prev = new Map<number, string>();
        for (const [m, ps] of first) for (const p of ps) prev.set(p, m);
        const m1 = Array.from({ length: after }, (_, i) => `m${i + (before > after ? 0 : 0)}`);
        const next = assignSticky(n, m1, prev);
        if (after === 0) return next.size === 0;
        const counts = [...next.values()].map((ps) => ps.length);
        expect(Math.max(...counts) - Math.min(...counts)).toBeLessThanOrEqual(1);
        const all = [...next.values()].flat().sort((a, b) => a - b);
        expect(all).toEqual(Array.from({ length: n }, (_, i) => i));
        // Moves: a partition moves only if its owner left or was over its quota.
        const quotaMax = Math.ceil(n / after);
        let moved = 0;
        for (const [p, owner] of prev) if (next.get(owner)?.includes(p) === false || !next.has(owner)) moved++;
        const minMoves = [...new Set(prev.values())].reduce((k, owner) => {
          const had = first.get(owner)!.length;
          return k + (next.has(owner) ? Math.max(0, had - quotaMax) : had);
        }, 0);
        expect(moved).toBeGreaterThanOrEqual(minMoves);
        expect(moved).toBeLessThanOrEqual(minMoves + after);
        return true;
      }),
    );
  });
});
