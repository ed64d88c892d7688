/**
 * The hub's structured logger (pino). Level from config/TRIBUTARY_LOG_LEVEL.
 * Tokens and record payloads are never logged.
 *
 * Output: JSON lines when stdout is a pipe or a file (log collectors,
 * tests); one human-readable, coloured line per entry when it is a terminal
 * (someone running `npm start`), through pino-pretty in the same thread
 * (synchronous, so that a line printed just before an exit is not lost).
 * TRIBUTARY_LOG_FORMAT=json or =pretty overrides the choice.
 */
import { pino, type Logger } from 'pino';
import pretty from 'pino-pretty';

export type { Logger };

export function createLogger(level: string): Logger {
  const opts = { level, base: { svc: 'tributary' }, redact: ['token', '*.token', 'authorization', '*.authorization'] };
  const format = process.env.TRIBUTARY_LOG_FORMAT;
  const human = format === 'pretty' || (format !== 'json' && process.stdout.isTTY === true);
  if (!human) return pino(opts);
  return pino(opts, pretty({ colorize: process.stdout.isTTY === true, sync: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname,svc' }));
}
