/**
 * The README's examples, for the tests that run them as written: the fenced
 * blocks of one `## ` section, in order.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/** The fenced blocks of language `lang` under the README heading `## {section}` (up to the next `## `), in order; throws when there is none. */
export function readmeBlocks(section: string, lang: 'sh' | 'ts'): string[] {
  const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  const start = readme.indexOf(`## ${section}\n`);
  if (start < 0) throw new Error(`no "## ${section}" section in README.md`);
  const end = readme.indexOf('\n## ', start + 1);
  const blocks = [...readme.slice(start, end < 0 ? undefined : end).matchAll(new RegExp('```' + lang + '\\n([\\s\\S]*?)```', 'g'))].map((m) => m[1]);
  if (!blocks.length) throw new Error(`no \`\`\`${lang} block under "## ${section}" in README.md`);
  return blocks;
}

/** A README TypeScript example with its repository-relative imports pointed at this checkout. */
export function withLocalImports(code: string): string {
  return code.replace(/'\.\/([\w/-]+\.ts)'/g, (_, p: string) => JSON.stringify(path.join(ROOT, p)));
}
