/** Topic patterns as device tokens and ALLOWED_TOPICS write them. */
import { describe, expect, it } from 'vitest';
import { matchesAny, matchesTopic, parseTopicPattern } from '../../protocol/topic-patterns.ts';

const p = (text: string) => {
  const pattern = parseTopicPattern(text);
  if (!pattern) throw new Error(`invalid pattern ${text}`);
  return pattern;
};

describe('topic patterns', () => {
  it('"prefix.*" matches any depth below the prefix but not the prefix itself', () => {
    expect(matchesTopic(p('sensors.*'), 'sensors.t')).toBe(true);
    expect(matchesTopic(p('sensors.*'), 'sensors.kitchen.t')).toBe(true);
    expect(matchesTopic(p('sensors.*'), 'sensors')).toBe(false);
    expect(matchesTopic(p('sensors.*'), 'sensors.')).toBe(false);
    expect(matchesTopic(p('sensors.*'), 'sensorsX.t')).toBe(false);
    expect(matchesTopic(p('sensors.*'), 'other.sensors.t')).toBe(false);
  });

  it('"*" matches every topic and a plain name only itself', () => {
    expect(matchesTopic(p('*'), 'anything')).toBe(true);
    expect(matchesTopic(p('lab.t'), 'lab.t')).toBe(true);
    expect(matchesTopic(p('lab.t'), 'lab.t2')).toBe(false);
    expect(matchesAny([], 'lab.t')).toBe(false);
    expect(matchesAny([p('a'), p('b.*')], 'b.c')).toBe(true);
  });

  it('refuses anything that is not a name, "prefix.*" or "*"', () => {
    for (const bad of ['', 'a*', '*.x', 'a.*.b', 'a b', '.*', '..*', 'a/b', '**']) expect(parseTopicPattern(bad), bad).toBeUndefined();
  });
});
