/**
 * The `tributary` command. `tributary serve` starts a hub; every row of the
 * settings table (server/settings.ts) is a flag here (and a TRIBUTARY_*
 * variable and a config file key). Prints `tributary listening on
 * http(s)://HOST:PORT` once bound.
 */
import { Command, Option } from 'commander';
import { authConfigWarnings } from './auth/index.ts';
import { assertSafeBind, loadConfig } from './config.ts';
import { startHub } from './hub.ts';
import { createLogger } from './logger.ts';
import { ConfigError, SETTINGS, envOf, flagOf, type SettingKey, type SettingSpec } from './settings.ts';
import { TransportError } from './transport/server.ts';

const ARG_OF_KIND: Record<SettingSpec['kind'], string> = { bool: '[bool]', int: '<n>', list: '<a,b,…>', string: '<value>', pem: '<pem|file>', enum: '' };

/** One option per row of the settings table; returns commander's property name → setting key. */
function addSettingFlags(cmd: Command): Map<string, SettingKey> {
  const optionKeyToSetting = new Map<string, SettingKey>();
  for (const [key, spec] of Object.entries(SETTINGS) as Array<[SettingKey, SettingSpec]>) {
    const arg = spec.kind === 'enum' ? `<${spec.values!.join('|')}>` : ARG_OF_KIND[spec.kind];
    const def = spec.default === undefined || (Array.isArray(spec.default) && spec.default.length === 0) ? '' : ` (default: ${String(spec.default)})`;
    const opt = new Option(`${flagOf(key)} ${arg}`, `${spec.doc} [${envOf(key)}]${def}`);
    if (spec.hidden) opt.hideHelp();
    cmd.addOption(opt);
    optionKeyToSetting.set(opt.attributeName(), key);
  }
  return optionKeyToSetting;
}

const program = new Command('tributary').description('Tributary: an event streaming hub for the web and the edge').showHelpAfterError();

const serve = program
  .command('serve')
  .description('start a hub: WebSocket /v1/ws and the HTTP API on one port')
  .option('-c, --config <file>', 'YAML or JSON config file (flags and TRIBUTARY_* variables override it)');
const optionKeys = addSettingFlags(serve);

serve.action(async (opts: Record<string, unknown>) => {
  const flags: Record<string, unknown> = {};
  for (const [optKey, settingKey] of optionKeys) if (opts[optKey] !== undefined) flags[settingKey] = opts[optKey];
  let cfg;
  try {
    cfg = loadConfig({ flags, env: process.env, file: (opts.config as string | undefined) ?? process.env.TRIBUTARY_CONFIG });
    assertSafeBind(cfg);
  } catch (e) {
    if (e instanceof ConfigError) {
      process.stderr.write(`tributary: ${e.message}\n`);
      process.exit(2);
    }
    throw e;
  }
  const log = createLogger(cfg.logLevel);
  for (const warning of authConfigWarnings(cfg.auth)) log.warn(warning);
  if (cfg.authEnabled) log.info({ algorithms: cfg.auth.algorithms, issuer: cfg.auth.issuer, audience: cfg.auth.audience, origins: cfg.auth.allowedOrigins }, 'authentication is on');

  let hub;
  try {
    hub = await startHub(cfg, log);
  } catch (e) {
    if (e instanceof TransportError) {
      process.stderr.write(`tributary: ${e.message}\n`);
      process.exit(1);
    }
    throw e;
  }
  process.stdout.write(`tributary listening on ${hub.url}\n`);
  log.info({ url: hub.url, data: cfg.data }, 'listening');

  let signals = 0;
  const shutdown = (signal: string): void => {
    if (++signals > 1) {
      log.warn({ signal }, 'second signal: exiting now');
      process.exit(130);
    }
    log.info({ signal }, 'shutting down');
    hub.stop().then(
      () => process.exit(0),
      (err: unknown) => {
        log.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));

  hub.ready.catch((err: unknown) => {
    log.fatal({ err }, 'storage recovery failed');
    process.stderr.write(`tributary: storage recovery failed: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  });
});

await program.parseAsync(process.argv);
