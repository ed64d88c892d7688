/**
 * Reading a whole topic back over the hub's HTTP API, the ground truth of the
 * exactly-once tests: every record of every partition, with its partition.
 */
export interface ReadRecord {
  partition: number;
  offset: number;
  key: string | null | { $base64: string };
  value: unknown;
  headers: Array<[string, unknown]>;
  timestamp: number;
}

export async function createTopic(hubUrl: string, name: string, partitions: number): Promise<void> {
  const res = await fetch(`${hubUrl}/v1/topics`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name, partitions }) });
  if (res.status !== 201) throw new Error(`create topic ${name}: ${res.status} ${await res.text()}`);
}

async function partitionCount(hubUrl: string, topic: string): Promise<number> {
  const res = await fetch(`${hubUrl}/v1/topics/${topic}`);
  if (res.status === 404) return 0;
  const body = (await res.json()) as { partitions: number | unknown[] };
  return Array.isArray(body.partitions) ? body.partitions.length : body.partitions;
}

export async function readPartition(hubUrl: string, topic: string, partition: number): Promise<ReadRecord[]> {
  const out: ReadRecord[] = [];
  let offset = 0;
  for (;;) {
    const res = await fetch(`${hubUrl}/v1/topics/${topic}/partitions/${partition}/records?offset=${offset}&limit=10000`);
    if (res.status !== 200) throw new Error(`read ${topic}/${partition}@${offset}: ${res.status} ${await res.text()}`);
    const body = (await res.json()) as { records: Array<Omit<ReadRecord, 'partition'>>; nextOffset: number; highWatermark: number };
    for (const r of body.records) out.push({ partition, ...r });
    if (body.nextOffset >= body.highWatermark || body.records.length === 0) return out;
    offset = body.nextOffset;
  }
}

/** Every record of the topic (all partitions), each partition in offset order. */
export async function readTopic(hubUrl: string, topic: string): Promise<ReadRecord[]> {
  const n = await partitionCount(hubUrl, topic);
  const out: ReadRecord[] = [];
  for (let p = 0; p < n; p++) out.push(...(await readPartition(hubUrl, topic, p)));
  return out;
}

/**
 * Checks exactly-once for events whose values are `{ n }` with n in [0, count):
 * each n appears once, and per key the n's appear in increasing order.
 * Returns a description of what is wrong, or '' when all is well.
 */
export function exactlyOnceProblems(records: ReadRecord[], count: number): string {
  const seen = new Map<number, number>();
  const lastPerKey = new Map<string, number>();
  const problems: string[] = [];
  for (const r of records) {
    const n = (r.value as { n?: unknown } | null)?.n;
    if (typeof n !== 'number') {
      problems.push(`record ${r.partition}/${r.offset} has no n`);
      continue;
    }
    seen.set(n, (seen.get(n) ?? 0) + 1);
    const key = JSON.stringify(r.key);
    const last = lastPerKey.get(key);
    if (last !== undefined && n < last) problems.push(`key ${key}: ${n} after ${last} (order broken)`);
    lastPerKey.set(key, n);
  }
  const missing: number[] = [];
  const dups: number[] = [];
  for (let n = 0; n < count; n++) {
    const c = seen.get(n) ?? 0;
    if (c === 0) missing.push(n);
    if (c > 1) dups.push(n);
  }
  if (missing.length) problems.push(`${missing.length} missing (first ${missing.slice(0, 10).join(', ')})`);
  if (dups.length) problems.push(`${dups.length} duplicated (first ${dups.slice(0, 10).join(', ')})`);
  if (records.length !== count) problems.push(`${records.length} records for ${count} events`);
  return problems.slice(0, 20).join('; ');
}
