/**
 * `tributary connect FILE`: runs the connectors of a YAML or JSON file
 * against a hub, until SIGTERM/SIGINT. Prints `connectors running` once
 * every connector has started (status and metrics on --http-port).
 */
import { Command } from 'commander';
import { pino } from 'pino';
import { TributaryError } from '../protocol/errors.ts';
import { readConnectFile } from './config.ts';
import { ConnectorRuntime } from './runtime.ts';
import { serveStatus } from './status-http.ts';

const program = new Command('tributary').showHelpAfterError();
program
  .command('connect')
  .description('run the source and sink connectors of FILE (YAML or JSON) against a hub')
  .argument('<file>', 'connectors file')
  .option('--hub <url>', "the hub's WebSocket URL (overrides hub.url in the file)", process.env.TRIBUTARY_HUB)
  .option('--token <token>', 'token for the hub (overrides hub.token)', process.env.TRIBUTARY_TOKEN)
  .option('--http-port <n>', 'serve GET /v1/connectors and /metrics on this port (127.0.0.1)')
  .option('--log-level <level>', 'pino log level', process.env.TRIBUTARY_LOG_LEVEL ?? 'info')
  .action(async (file: string, opts: { hub?: string; token?: string; httpPort?: string; logLevel: string }) => {
    const log = pino({ level: opts.logLevel, base: { svc: 'tributary-connect' }, redact: ['token', '*.token'] });
    let runtime: ConnectorRuntime;
    try {
      runtime = new ConnectorRuntime(readConnectFile(file), { url: opts.hub, token: opts.token, log });
    } catch (e) {
      process.stderr.write(`tributary connect: ${e instanceof TributaryError || e instanceof Error ? e.message : String(e)}\n`);
      process.exit(2);
    }
    let signals = 0;
    const shutdown = (signal: string): void => {
      if (++signals > 1) process.exit(130);
      log.info({ signal }, 'stopping connectors');
      runtime.stop().then(
        () => process.exit(0),
        () => process.exit(1),
      );
    };
    process.on('SIGTERM', () => shutdown('SIGTERM'));
    process.on('SIGINT', () => shutdown('SIGINT'));
    if (opts.httpPort !== undefined) {
      const server = await serveStatus(runtime, '127.0.0.1', Number(opts.httpPort));
      const addr = server.address() as { port: number };
      process.stdout.write(`connectors status on http://127.0.0.1:${addr.port}\n`);
    }
    await runtime.start();
    process.stdout.write('connectors running\n');
  });

await program.parseAsync(process.argv);
