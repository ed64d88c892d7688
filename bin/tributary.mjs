#!/usr/bin/env node
// The `tributary` command. The hub is written in TypeScript and run through
// tsx's loader (transpile on load, cached), so there is no build step to start it.
// Each top-level command names the module that owns it; the client commands
// (topic, produce, consume, groups) live in cli/ and never load the hub.
import { register } from 'tsx/esm/api';

const COMMANDS = {
  serve: '../server/cli.ts',
  connect: '../connectors/cli.ts',
};
const CLIENT_COMMANDS = '../cli/main.ts';

register();
const name = process.argv[2];
await import(Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : CLIENT_COMMANDS);
