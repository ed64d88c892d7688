/**
 * The `tributary` client commands: topic, produce, consume, groups. Each
 * talks to a running hub through the web client (WebSocket) and its HTTP
 * admin, never through the hub's own modules. bin/tributary.mjs sends
 * `serve` to server/cli.ts and everything else here.
 */
import { Command, Option } from 'commander';
import { consumeCommand } from './consume-command.ts';
import { groupCommands } from './group-commands.ts';
import { DEFAULT_URL } from './hub-context.ts';
import { produceCommand } from './produce-command.ts';
import { topicCommands } from './topic-commands.ts';

const program = new Command('tributary')
  .description('Tributary: an event streaming hub for the web and the edge')
  .addOption(new Option('--url <url>', "the hub's HTTP base URL").env('TRIBUTARY_URL').default(DEFAULT_URL))
  .addOption(new Option('--token <token>', 'a bearer token (JWT) when the hub has auth on').env('TRIBUTARY_TOKEN'))
  .showHelpAfterError()
  .addHelpText('after', '\nStart a hub with `tributary serve` (`tributary serve --help` lists its settings).');

program.addCommand(topicCommands());
program.addCommand(produceCommand());
program.addCommand(consumeCommand());
program.addCommand(groupCommands());

await program.parseAsync(process.argv);
