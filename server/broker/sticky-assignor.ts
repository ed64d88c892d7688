/**
 * The sticky assignor (Kafka's StickyAssignor / KIP-848's uniform assignor,
 * for one topic): every partition to exactly one member, counts balanced to
 * within one, and as few partitions moved as possible from the previous
 * assignment when members join or leave.
 *
 * Pure and deterministic: the same members and previous assignment give the
 * same answer, so a rebalance is reproducible in tests.
 */

/**
 * @param partitionCount partitions 0..partitionCount-1 of the topic
 * @param members member ids, in join order (ties go to earlier members)
 * @param previous the previous target: partition → member (members gone or partitions gone are ignored)
 * @returns member → sorted partitions, with an entry (maybe empty) for every member
 */
export function assignSticky(partitionCount: number, members: readonly string[], previous: ReadonlyMap<number, string>): Map<string, number[]> {
  const out = new Map<string, number[]>();
  for (const m of members) out.set(m, []);
  if (members.length === 0) return out;

  // What each member keeps from before, in partition order.
  const held = new Map<string, number[]>();
  for (const m of members) held.set(m, []);
  for (let p = 0; p < partitionCount; p++) {
    const owner = previous.get(p);
    if (owner !== undefined) held.get(owner)?.push(p);
  }

  // Quotas: floor(n/m) each, and `extra` members get one more. The extra slots go
  // to the members that already hold the most, so that fewer partitions move.
  const base = Math.floor(partitionCount / members.length);
  let extra = partitionCount % members.length;
  const order = members.map((m, i) => ({ m, i, n: held.get(m)!.length })).sort((a, b) => b.n - a.n || a.i - b.i);
  const quota = new Map<string, number>();
  for (const { m, n } of order) {
    if (extra > 0 && n > base) {
      quota.set(m, base + 1);
      extra--;
    } else quota.set(m, base);
  }
  // Extra slots nobody's holdings claimed go to the earliest members.
  for (const m of members) {
    if (extra === 0) break;
    if (quota.get(m) === base) {
      quota.set(m, base + 1);
      extra--;
    }
  }

  const free: number[] = [];
  const taken = new Uint8Array(partitionCount);
  for (const m of members) {
    const keep = held.get(m)!.slice(0, quota.get(m));
    out.set(m, keep);
    for (const p of keep) taken[p] = 1;
  }
  for (let p = 0; p < partitionCount; p++) if (!taken[p]) free.push(p);

  let next = 0;
  for (const m of members) {
    const list = out.get(m)!;
    const want = quota.get(m)!;
    while (list.length < want && next < free.length) list.push(free[next++]);
    list.sort((a, b) => a - b);
  }
  if (next !== free.length) throw new Error(`assignor left ${free.length - next} partitions unassigned`);
  return out;
}
