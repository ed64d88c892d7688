#!/usr/bin/env node
// The `tributary` command. The hub is written in TypeScript and run through
// tsx's loader (transpile on load, cached), so there is no build step to start it.
// Each top-level command names the module that owns it; the client commands
// (topic, produce, consume, groups) live in cli/ and never load the hub. They
// run from a compiled copy kept fresh by compiled-cli.mjs (a process start per
// command, so its cost counts), through tsx when that copy cannot be built.
import { pathToFileURL } from 'node:url';

const COMMANDS = {
  serve: '../server/cli.ts',
  connect: '../connectors/cli.ts',
};
const CLIENT_COMMANDS = '../cli/main.ts';

const name = process.argv[2];
if (Object.hasOwn(COMMANDS, name)) {
  (await import('tsx/esm/api')).register();
  await import(COMMANDS[name]);
} else {
  const compiled = await (await import('./compiled-cli.mjs')).compiledCliEntry();
  if (compiled) await import(pathToFileURL(compiled).href);
  else {
    (await import('tsx/esm/api')).register();
    await import(CLIENT_COMMANDS);
  }
}
