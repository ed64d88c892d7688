/**
 * `tributary groups list|describe|reset|delete`: consumer groups through the
 * hub's group routes (docs/http-api.md).
 */
import { Command } from 'commander';
import { action, adminOf, hubTarget, parseCount, parsePosition, UsageError } from './hub-context.ts';
import { formatTable, printJson } from './output-table.ts';

export function groupCommands(): Command {
  const groups = new Command('groups').description('list, describe, reset and delete consumer groups');

  groups
    .command('list')
    .description('list consumer groups with their state, members and lag')
    .option('--json', "print the hub's answer as JSON")
    .action(
      action(async (opts: { json?: boolean }, cmd: Command) => {
        const list = await adminOf(hubTarget(cmd)).listGroups();
        if (opts.json) return printJson({ groups: list });
        process.stdout.write(
          formatTable(
            ['GROUP', 'STATE', 'GENERATION', 'MEMBERS', 'TOPICS', 'LAG'],
            list.map((g) => [g.group, g.state, g.generation, g.members, g.topics.join(','), g.lag]),
          ),
        );
      }),
    );

  groups
    .command('describe <group>')
    .description("show a group's members, their partitions, and committed offsets with lag")
    .option('--json', "print the hub's answer as JSON")
    .action(
      action(async (group: string, opts: { json?: boolean }, cmd: Command) => {
        const d = await adminOf(hubTarget(cmd)).describeGroup(group);
        if (opts.json) return printJson(d);
        process.stdout.write(`group ${d.group}, ${d.state}, generation ${d.generation}\n\n`);
        if (d.members.length)
          process.stdout.write(
            formatTable(
              ['MEMBER', 'CLIENT', 'TOPIC', 'PARTITIONS'],
              d.members.map((m) => [m.member, m.client, m.topic, m.partitions.join(',')]),
            ) + '\n',
          );
        else process.stdout.write('no members\n\n');
        process.stdout.write(
          formatTable(
            ['TOPIC', 'PARTITION', 'COMMITTED', 'HIGH-WATERMARK', 'LAG'],
            d.offsets.map((o) => [o.topic, o.partition, o.committed ?? '-', o.highWatermark, o.lag]),
          ),
        );
      }),
    );

  groups
    .command('reset <group>')
    .description("move a group's committed offsets (only while it has no members)")
    .requiredOption('-t, --topic <topic>', 'the topic whose offsets move')
    .requiredOption('--to <position>', 'earliest, latest, an offset, or an ISO time (the first record at or after it)')
    .option('--partition <p...>', 'only these partitions (default: all)')
    .option('--json', "print the hub's answer as JSON")
    .action(
      action(async (group: string, opts: { topic: string; to: string; partition?: string[]; json?: boolean }, cmd: Command) => {
        const to = parsePosition('--to', opts.to);
        const partitions = opts.partition?.map((p) => parseCount('--partition', p));
        if (partitions && !partitions.length) throw new UsageError('--partition needs at least one partition');
        const res = await adminOf(hubTarget(cmd)).resetGroup(group, opts.topic, to, partitions);
        if (opts.json) return printJson(res);
        process.stdout.write(
          formatTable(
            ['TOPIC', 'PARTITION', 'COMMITTED', 'HIGH-WATERMARK', 'LAG'],
            res.offsets.map((o) => [o.topic, o.partition, o.committed ?? '-', o.highWatermark, o.lag]),
          ),
        );
      }),
    );

  groups
    .command('delete <group>')
    .description("forget a group's committed offsets (only while it has no members)")
    .action(
      action(async (group: string, _opts: unknown, cmd: Command) => {
        await adminOf(hubTarget(cmd)).deleteGroup(group);
        process.stdout.write(`deleted group ${group}\n`);
      }),
    );

  return groups;
}
