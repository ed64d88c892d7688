#!/usr/bin/env node
// The `tributary` command. The hub is written in TypeScript and run through
// tsx's loader (transpile on load, cached), so there is no build step to start it.
import { register } from 'tsx/esm/api';

register();
await import('../server/cli.ts');
