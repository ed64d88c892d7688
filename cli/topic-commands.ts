/**
 * `tributary topic create|list|describe|delete`: the hub's topic routes
 * (docs/http-api.md) through the web client's HTTP admin.
 */
import { Command } from 'commander';
import { action, adminOf, hubTarget, parseCount, UsageError } from './hub-context.ts';
import { formatBytes, formatTable, printJson } from './output-table.ts';

/** `--config retentionMs=3600000`: numbers as numbers, everything else as text. */
function parseConfigPair(pair: string, acc: Record<string, unknown>): Record<string, unknown> {
  const eq = pair.indexOf('=');
  if (eq <= 0) throw new UsageError(`--config takes key=value, got ${JSON.stringify(pair)}`);
  const key = pair.slice(0, eq);
  const text = pair.slice(eq + 1);
  acc[key] = /^-?\d+$/.test(text) ? Number(text) : text;
  return acc;
}

export function topicCommands(): Command {
  const topic = new Command('topic').description('create, list, describe and delete topics');

  topic
    .command('create <name>')
    .description('create a topic')
    .option('-p, --partitions <n>', "partition count (default: the hub's defaultPartitions)")
    .option('--config <key=value>', 'topic config, repeatable (retentionMs, cleanupPolicy, …)', parseConfigPair, {})
    .option('--json', "print the hub's answer as JSON")
    .action(
      action(async (name: string, opts: { partitions?: string; config: Record<string, unknown>; json?: boolean }, cmd: Command) => {
        const partitions = opts.partitions === undefined ? undefined : parseCount('--partitions', opts.partitions);
        const d = await adminOf(hubTarget(cmd)).createTopic(name, partitions, Object.keys(opts.config).length ? opts.config : undefined);
        if (opts.json) printJson(d);
        else process.stdout.write(`created topic ${d.name} with ${d.partitions} partition${d.partitions === 1 ? '' : 's'}\n`);
      }),
    );

  topic
    .command('list')
    .description('list topics with their partitions, records and size')
    .option('--json', "print the hub's answers as JSON")
    .action(
      action(async (opts: { json?: boolean }, cmd: Command) => {
        const admin = adminOf(hubTarget(cmd));
        const topics = await admin.listTopics();
        // The list has partition counts only; offsets and sizes come from each topic's own route.
        const described = await Promise.all(topics.map((t) => admin.describeTopic(t.name)));
        if (opts.json) return printJson({ topics: described });
        const rows = described.map((d) => {
          const records = d.offsets.reduce((n, o) => n + (o.logEnd - o.earliest), 0);
          const bytes = d.offsets.reduce((n, o) => n + o.bytes, 0);
          return [d.name, d.partitions, records, formatBytes(bytes)];
        });
        process.stdout.write(formatTable(['TOPIC', 'PARTITIONS', 'RECORDS', 'SIZE'], rows));
      }),
    );

  topic
    .command('describe <name>')
    .description("show a topic's config and per-partition offsets")
    .option('--json', "print the hub's answer as JSON")
    .action(
      action(async (name: string, opts: { json?: boolean }, cmd: Command) => {
        const d = await adminOf(hubTarget(cmd)).describeTopic(name);
        if (opts.json) return printJson(d);
        process.stdout.write(`topic ${d.name}, ${d.partitions} partitions, created ${new Date(d.createdAt).toISOString()}\n`);
        process.stdout.write(
          `config ${Object.entries(d.config)
            .map(([k, v]) => `${k}=${String(v)}`)
            .join(' ')}\n\n`,
        );
        process.stdout.write(
          formatTable(
            ['PARTITION', 'EARLIEST', 'HIGH-WATERMARK', 'LOG-END', 'SIZE'],
            d.offsets.map((o) => [o.partition, o.earliest, o.highWatermark, o.logEnd, formatBytes(o.bytes)]),
          ),
        );
      }),
    );

  topic
    .command('delete <name>')
    .description('delete a topic and its data')
    .action(
      action(async (name: string, _opts: unknown, cmd: Command) => {
        await adminOf(hubTarget(cmd)).deleteTopic(name);
        process.stdout.write(`deleted topic ${name}\n`);
      }),
    );

  return topic;
}
