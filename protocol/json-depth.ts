/**
 * Nesting depth of JSON text, counted before JSON.parse: V8 parses deep
 * nesting fine, but everything after it that recurses (JSON.stringify of a
 * record value, a walk over the document) ends in "Maximum call stack size
 * exceeded". One pass over the characters, strings skipped.
 */

/** Whether `text` opens more than `maxDepth` nested arrays or objects at any point. */
export function jsonNestsDeeperThan(text: string, maxDepth: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c)
        i++; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x5b || c === 0x7b) {
      if (++depth > maxDepth) return true;
    } else if (c === 0x5d || c === 0x7d) depth--;
  }
  return false;
}
