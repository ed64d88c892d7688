#!/usr/bin/env node
// The `tributary` command. It is written in TypeScript, with no build step to
// run it: each top-level command names the module that owns it, and runs from
// a compiled copy that compiled.mjs keeps fresh (rebuilt when a source file
// changed), or through tsx's loader when that copy cannot be built. The
// client commands (topic, produce, consume, groups) live in cli/ and never
// load the hub.
import { pathToFileURL } from 'node:url';

const COMMANDS = {
  serve: { target: 'serve', source: '../server/cli.ts' },
  connect: { target: 'connect', source: '../connectors/cli.ts' },
};
const CLIENT_COMMANDS = { target: 'cli', source: '../cli/main.ts' };

const name = process.argv[2];
const command = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : CLIENT_COMMANDS;
// TRIBUTARY_NO_COMPILE=1 runs the sources through tsx (e.g. for source-mapped stack traces while debugging).
const compiled = process.env.TRIBUTARY_NO_COMPILE ? null : await (await import('./compiled.mjs')).compiledEntry(command.target);
if (compiled) await import(pathToFileURL(compiled).href);
else {
  (await import('tsx/esm/api')).register();
  await import(command.source);
}
