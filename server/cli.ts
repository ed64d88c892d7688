/**
 * The `tributary` command. `tributary serve` starts a hub; every setting of
 * server/config.ts and of AUTH_SETTINGS is a flag here (and a TRIBUTARY_*
 * variable and a config file key). Prints `tributary listening on
 * http(s)://HOST:PORT` once bound.
 */
import { Command, Option } from 'commander';
import { AUTH_DEFAULTS, AUTH_SETTINGS, DEFAULT_LIMITS, authConfigWarnings, flagProperty } from './auth/index.ts';
import { ConfigError, SETTINGS, assertSafeBind, flagNameOf, loadConfig, type SettingSpec } from './config.ts';
import { startHub } from './hub.ts';
import { createLogger } from './logger.ts';
import { TransportError } from './transport/server.ts';

function camel(flag: string): string {
  return flag.replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

function addSettingFlags(cmd: Command): Map<string, string> {
  const optionKeyToSetting = new Map<string, string>();
  for (const [key, spec] of Object.entries(SETTINGS) as Array<[string, SettingSpec]>) {
    const flag = flagNameOf(key);
    const arg = spec.kind === 'bool' ? '[bool]' : spec.kind === 'int' ? '<n>' : spec.kind === 'enum' ? `<${spec.values!.join('|')}>` : '<value>';
    const def = spec.default === undefined ? '' : ` (default: ${String(spec.default)})`;
    const opt = new Option(`--${flag} ${arg}`, `${spec.doc}${def}`);
    if (spec.hidden) opt.hideHelp();
    cmd.addOption(opt);
    optionKeyToSetting.set(camel(flag), key);
  }
  for (const s of AUTH_SETTINGS) {
    const arg = s.kind === 'mode' ? '<none|jwt>' : s.kind === 'int' ? '<n>' : s.kind === 'list' ? '<a,b,…>' : s.kind === 'bool' ? '[bool]' : '<value>';
    const name = s.key.slice(s.key.lastIndexOf('.') + 1);
    const def = (DEFAULT_LIMITS as Record<string, unknown>)[name] ?? (AUTH_DEFAULTS as Record<string, unknown>)[name];
    cmd.addOption(new Option(`${s.flag} ${arg}`, `${s.description} [${s.env}]${def === undefined ? '' : ` (default: ${String(def)})`}`));
    optionKeyToSetting.set(flagProperty(s.flag), s.key);
  }
  // The flag's name before the limits moved to AUTH_SETTINGS; kept hidden so existing scripts keep working.
  cmd.addOption(new Option('--max-in-flight-requests-per-connection <n>').hideHelp());
  optionKeyToSetting.set('maxInFlightRequestsPerConnection', 'limits.maxInFlightPerConnection');
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
  for (const [optKey, settingKey] of optionKeys) if (opts[optKey] !== undefined) flags[settingKey] ??= opts[optKey];
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
