/**
 * What every client command shares: the hub's URL and token from the global
 * options (--url, TRIBUTARY_URL; --token, TRIBUTARY_TOKEN), the HTTP admin
 * client and the WebSocket client built from them, and the one way a
 * command fails (a line on stderr naming the code, exit status 1).
 */
import type { Command } from 'commander';
import { TributaryError } from '../protocol/errors.ts';
import { createAdmin, webSocketUrlOf, type Admin } from '../web-client/admin.ts';
import { ClientError } from '../web-client/errors.ts';
import type { Client } from '../web-client/node.ts';

export const DEFAULT_URL = 'http://127.0.0.1:8080';

export interface HubTarget {
  url: string;
  token?: string;
}

/** The global options as the command sees them (commander merges the program's into optsWithGlobals). */
export function hubTarget(cmd: Command): HubTarget {
  const o = cmd.optsWithGlobals() as { url?: string; token?: string };
  const url = o.url ?? DEFAULT_URL;
  if (!/^https?:\/\//.test(url)) throw new UsageError(`--url must be the hub's http(s):// base URL, got ${JSON.stringify(url)}`);
  return { url, token: o.token || undefined };
}

export function adminOf(t: HubTarget): Admin {
  return createAdmin({ url: t.url, token: t.token });
}

/**
 * A WebSocket client with a memory outbox: a CLI run owns its events only until it exits, after flush.
 * Loaded on demand: topic and groups commands need only HTTP, and start faster without ws and the client.
 */
export async function clientOf(t: HubTarget, name: string): Promise<Client> {
  const { createClient } = await import('../web-client/node.ts');
  return createClient({ url: webSocketUrlOf(t.url), token: t.token, outbox: 'memory', name, backoffMaxMs: 2_000 });
}

/** Bad flags or arguments: exit status 2, as commander's own usage errors. */
export class UsageError extends Error {}

/** Reports an error and exits: 2 for usage, 1 for everything the hub or the connection refused. */
function exitWithError(err: unknown): never {
  if (err instanceof UsageError) {
    process.stderr.write(`tributary: ${err.message}\n`);
    process.exit(2);
  }
  if (err instanceof TributaryError || err instanceof ClientError) {
    process.stderr.write(`tributary: ${err.code}: ${err.message}\n`);
  } else {
    process.stderr.write(`tributary: ${err instanceof Error ? err.message : String(err)}\n`);
  }
  process.exit(1);
}

/** Wraps a command's action so every failure goes through exitWithError. */
export function action<A extends unknown[]>(fn: (...args: A) => Promise<void>): (...args: A) => Promise<void> {
  return async (...args: A) => {
    try {
      await fn(...args);
    } catch (err) {
      exitWithError(err);
    }
  };
}

/** Parses a non-negative integer flag, or throws a UsageError naming it. */
export function parseCount(flag: string, text: string): number {
  if (!/^\d{1,15}$/.test(text)) throw new UsageError(`${flag} must be a non-negative integer, got ${JSON.stringify(text)}`);
  return Number(text);
}

/** --from / --to: earliest, latest, an offset, or an ISO-8601 time (e.g. 2026-11-30T15:00:00Z). */
export type Position = 'earliest' | 'latest' | { offset: number } | { timestamp: number };

export function parsePosition(flag: string, text: string): Position {
  if (text === 'earliest' || text === 'latest') return text;
  if (/^\d+$/.test(text)) return { offset: parseCount(flag, text) };
  // Only ISO-like text counts as a time: Date.parse also takes "1" or "March", which would surprise.
  const ms = /^\d{4}-\d{2}-\d{2}/.test(text) ? Date.parse(text) : NaN;
  if (!Number.isFinite(ms)) throw new UsageError(`${flag} must be earliest, latest, an offset or an ISO time such as 2026-11-30T15:00:00Z; got ${JSON.stringify(text)}`);
  return { timestamp: ms };
}

/** Writes a line to stdout, waiting for the pipe to drain when it is full (a slow `| jq` slows us, it does not fill memory). */
export function writeLine(line: string): Promise<void> | undefined {
  if (process.stdout.write(`${line}\n`)) return undefined;
  return new Promise((resolve) => process.stdout.once('drain', resolve));
}

/** `consume … | head -3`: a closed pipe ends the run quietly, as Unix tools do. */
export function exitQuietlyOnClosedPipe(): void {
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(0);
    exitWithError(err);
  });
}
