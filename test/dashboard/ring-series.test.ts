/** The dashboard's chart rings: bounded, ordered, merging close points; numeric fields found by path. */
import { describe, expect, it } from 'vitest';
import { numericFields, RingSeries } from '../../dashboard/ring-series.ts';

describe('RingSeries', () => {
  it('keeps the newest points up to its capacity, oldest first', () => {
    const r = new RingSeries(3, 0);
    for (let i = 1; i <= 5; i++) r.push(i * 1000, i * 10);
    const [x, y] = r.ordered();
    expect([...x]).toEqual([3, 4, 5]);
    expect([...y]).toEqual([30, 40, 50]);
    expect(r.added).toBe(5);
  });

  it('merges records closer than the gap into one point (their mean), and late ones into the newest', () => {
    const r = new RingSeries(10, 25);
    r.push(1000, 1);
    r.push(1010, 3); // within 25 ms: merged
    r.push(1100, 10);
    r.push(900, 20); // older than the newest point: merged into it, x stays sorted
    const [x, y] = r.ordered();
    expect([...x]).toEqual([1, 1.1]);
    expect([...y]).toEqual([2, 15]);
    expect(r.added).toBe(2);
  });
});

describe('numericFields', () => {
  it('finds numbers by dotted path two levels deep; a bare number is "value"', () => {
    expect(numericFields(42)).toEqual([['value', 42]]);
    expect(numericFields({ temp: 21.5, name: 'x', pos: { lat: 1, lon: 2, deep: { z: 3 } }, list: [1, 2] })).toEqual([
      ['temp', 21.5],
      ['pos.lat', 1],
      ['pos.lon', 2],
    ]);
    expect(numericFields('12')).toEqual([]);
    expect(numericFields({ bad: Number.NaN })).toEqual([]);
  });
});
