/**
 * The hub's structured logger (pino, JSON lines on stdout). Level from
 * config/TRIBUTARY_LOG_LEVEL. Tokens and record payloads are never logged.
 */
import { pino, type Logger } from 'pino';

export type { Logger };

export function createLogger(level: string): Logger {
  return pino({ level, base: { svc: 'tributary' }, redact: ['token', '*.token', 'authorization', '*.authorization'] });
}
