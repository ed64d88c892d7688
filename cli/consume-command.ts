/**
 * `tributary consume TOPIC`: replay from --from, then follow live, printing
 * one JSON object per record and line (see record-json.ts), so it pipes
 * into jq. Ends after --limit records (committing them first when a
 * --group is given), or on Ctrl-C. Records are written as fast as stdout
 * takes them: a slow reader slows the subscription (credit flow control),
 * it does not fill memory.
 */
import { Command } from 'commander';
import type { SubscribeOptions, SubscriptionHandle, TopicDescription } from '../web-client/node.ts';
import { action, adminOf, clientOf, exitQuietlyOnClosedPipe, hubTarget, parseCount, parsePosition, UsageError, writeLine, type Position } from './hub-context.ts';
import { startProgress } from './progress.ts';
import { recordLine } from './record-json.ts';

interface ConsumeOptions {
  from: string;
  group?: string;
  limit?: string;
  partition?: string[];
}

export function consumeCommand(): Command {
  return new Command('consume')
    .argument('<topic>')
    .description('print records as JSON lines: replay from --from, then follow live')
    .option('--from <position>', 'earliest, latest, an offset (in each partition), or an ISO time such as 2026-11-30T15:00:00Z', 'latest')
    .option('-g, --group <group>', 'consume as a member of this consumer group (its committed offsets win over --from)')
    .option('-n, --limit <n>', 'exit after this many records')
    .option('-p, --partition <p...>', 'only these partitions')
    .action(action((topic: string, opts: ConsumeOptions, cmd: Command) => consume(topic, opts, cmd)));
}

function subscribeFrom(p: Position): SubscribeOptions['from'] {
  if (p === 'earliest' || p === 'latest') return p;
  if ('offset' in p) return p.offset;
  return { timestamp: p.timestamp };
}

/** Records a replay from `from` has ahead of it right now, for the bar's ETA (unknown for a time). */
function backlog(d: TopicDescription, from: Position, partitions: number[] | undefined): number | undefined {
  if (from === 'latest' || (typeof from === 'object' && 'timestamp' in from)) return undefined;
  let n = 0;
  for (const o of d.offsets) {
    if (partitions && !partitions.includes(o.partition)) continue;
    const start = from === 'earliest' ? o.earliest : Math.max(o.earliest, Math.min(from.offset, o.highWatermark));
    n += o.highWatermark - start;
  }
  return n;
}

async function consume(topic: string, opts: ConsumeOptions, cmd: Command): Promise<void> {
  const target = hubTarget(cmd);
  const from = parsePosition('--from', opts.from);
  const limit = opts.limit === undefined ? undefined : parseCount('--limit', opts.limit);
  const partitions = opts.partition?.map((p) => parseCount('--partition', p));
  // Fails fast on an unknown topic or an unreachable hub, and tells the bar how much there is to replay.
  const described = await adminOf(target).describeTopic(topic);
  for (const p of partitions ?? []) if (p >= described.partitions) throw new UsageError(`topic ${topic} has ${described.partitions} partitions; there is no partition ${p}`);
  if (limit === 0) return;
  exitQuietlyOnClosedPipe();

  const client = await clientOf(target, `cli-consume-${process.pid}`);
  // A bar on the terminal only when the records themselves go elsewhere (a file, a pipe).
  const total = limit ?? backlog(described, from, partitions);
  const progress = startProgress({ label: `consume ${topic}`, enabled: process.stderr.isTTY === true && process.stdout.isTTY !== true, total });
  let count = 0;
  const tick = setInterval(() => progress.update(count), 200);
  let sub: SubscriptionHandle | undefined;

  const finished = new Promise<void>((resolve, reject) => {
    client.on('error', (e) => {
      const code = (e as { code?: string }).code;
      // The connection's own troubles are retried by the client; a refusal of this subscription is not.
      if (code !== 'DISCONNECTED') reject(e);
    });
    const onSignal = (): void => resolve();
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    const subOpts: SubscribeOptions = { from: subscribeFrom(from) };
    if (opts.group !== undefined) subOpts.group = opts.group;
    if (partitions) subOpts.partitions = partitions;
    sub = client.subscribe(topic, subOpts, async (record) => {
      if (limit !== undefined && count >= limit) {
        // Past the limit: hold the record (never printed, never committed) until the run ends.
        return new Promise<void>(() => undefined);
      }
      count++;
      const drained = writeLine(recordLine(record));
      if (limit !== undefined && count === limit) queueMicrotask(resolve);
      return drained;
    });
  });
  try {
    await finished;
    // A group member commits what it printed before it leaves, so the next run starts after it.
    if (opts.group !== undefined && sub) await sub.commit();
  } finally {
    clearInterval(tick);
    progress.update(count);
    progress.stop();
    sub?.close();
    await client.close();
  }
}
