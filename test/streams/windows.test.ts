/**
 * Windowing, stores, changelog replay and sequence bookkeeping as pure
 * logic: the parts of streams/ that decide what a task outputs and what it
 * restores, checked without a hub.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ChangelogRestorer, entryEvent, fenceEvent, progressEvent, type Progress } from '../../streams/changelog.ts';
import { SequenceBook } from '../../streams/sequences.ts';
import { WindowStore, windowKey } from '../../streams/window-store.ts';
import { isClosed, normalizeWindows, windowStartsFor } from '../../streams/windows.ts';

describe('time windows', () => {
  it('a tumbling window holds exactly the timestamps in [start, start + size)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 2 ** 40 }), fc.integer({ min: 1, max: 100_000 }), (ts, size) => {
        const starts = windowStartsFor(ts, size, size);
        expect(starts).toHaveLength(1);
        expect(starts[0] <= ts && ts < starts[0] + size).toBe(true);
        expect(starts[0] % size).toBe(0);
      }),
    );
  });

  it('a hopping window of size S advancing A puts each timestamp in S/A windows, oldest first', () => {
    expect(windowStartsFor(25, 20, 5)).toEqual([10, 15, 20, 25]);
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 2 ** 40 }), fc.integer({ min: 1, max: 50 }), fc.integer({ min: 1, max: 20 }), (ts, advance, k) => {
        const size = advance * k;
        const starts = windowStartsFor(ts, size, advance);
        expect(starts).toHaveLength(k);
        for (const s of starts) expect(s <= ts && ts < s + size).toBe(true);
        expect([...starts].sort((a, b) => a - b)).toEqual(starts);
      }),
    );
  });

  it('a window closes once stream time reaches end + grace', () => {
    expect(isClosed(1000, 100, 1099)).toBe(false);
    expect(isClosed(1000, 100, 1100)).toBe(true);
  });

  it('refuses windows that make no sense', () => {
    expect(() => normalizeWindows({ tumblingMs: 0 })).toThrow(/tumblingMs/);
    expect(() => normalizeWindows({ hoppingMs: 10, advanceMs: 20 })).toThrow(/advanceMs/);
    expect(() => normalizeWindows({ hoppingMs: 1_000_000, advanceMs: 1 })).toThrow(/windows per record/);
    expect(() => normalizeWindows({ tumblingMs: 10, graceMs: -1 })).toThrow(/graceMs/);
    expect(normalizeWindows({ sessionGapMs: 5, graceMs: 2 })).toEqual({ kind: 'session', gapMs: 5, graceMs: 2 });
  });
});

describe('window store', () => {
  it('hands back the windows ending by a time, oldest end first, and forgets them', () => {
    const s = new WindowStore<number>('w', true);
    s.put(windowKey('b', 0, 10), 1);
    s.put(windowKey('a', 10, 20), 2);
    s.put(windowKey('a', 0, 10), 3);
    s.takeDirty();
    expect(s.firstEnd).toBe(10);
    expect(s.takeEndingBy(10)).toEqual([
      [windowKey('a', 0, 10), 3],
      [windowKey('b', 0, 10), 1],
    ]);
    expect(s.size).toBe(1);
    expect(s.firstEnd).toBe(20);
    expect(s.windowsOf('a')).toEqual([windowKey('a', 10, 20)]);
    // the deletions are changes the changelog must carry (as tombstones)
    expect(s.takeDirty().map(([k, v]) => [k, v])).toEqual([
      [windowKey('a', 0, 10), undefined],
      [windowKey('b', 0, 10), undefined],
    ]);
  });

  it('rebuilds its indexes from restored entries', () => {
    const s = new WindowStore<number>('w', true);
    s.restore(windowKey('k', 5, 15), 7);
    s.restore(windowKey('k', 20, 30), 8);
    s.restore(windowKey('k', 5, 15), undefined);
    expect(s.windowsOf('k')).toEqual([windowKey('k', 20, 30)]);
    expect(s.firstEnd).toBe(30);
    expect(s.dirtyCount).toBe(0);
  });

  it('keys containing the separator-free text and @ survive the round trip', () => {
    const s = new WindowStore<number>('w', false);
    s.put(windowKey('room@1', 0, 60_000), 1);
    expect(s.takeEndingBy(60_000)).toEqual([[windowKey('room@1', 0, 60_000), 1]]);
  });
});

describe('changelog replay', () => {
  const progress = (offset: number): Progress => ({ offset, seqs: [['out', 0, offset * 2]], times: { w: offset }, epoch: 'e' });
  const feed = (r: ChangelogRestorer, events: Array<{ key?: unknown; value: unknown }>) => {
    for (const e of events) r.apply(e.key as string, e.value === undefined ? null : JSON.parse(JSON.stringify(e.value)));
  };

  it('entries count only once a progress record follows them', () => {
    const r = new ChangelogRestorer();
    feed(r, [entryEvent('s', 'a', 1, 0), entryEvent('s', 'b', 2, 0), progressEvent(progress(10), 0), entryEvent('s', 'a', 5, 0)]);
    const st = r.finish();
    expect([...st.stores.get('s')!]).toEqual([
      ['a', 1],
      ['b', 2],
    ]);
    expect(st.progress?.offset).toBe(10);
    expect(st.progress?.seqs).toEqual([['out', 0, 20]]);
    expect([...st.toRepair.get('s')!]).toEqual(['a']);
  });

  it("a fence voids the last owner's unfinished flush, and the keys it touched are repaired by the next owner", () => {
    const r = new ChangelogRestorer();
    feed(r, [
      entryEvent('s', 'a', 1, 0),
      progressEvent(progress(1), 0),
      entryEvent('s', 'a', 99, 0), // owner 1 died here
      fenceEvent('owner-2', 0),
      entryEvent('s', 'b', 3, 0), // owner 2 died before its progress record too
      fenceEvent('owner-3', 0),
    ]);
    const st = r.finish();
    expect(st.stores.get('s')!.get('a')).toBe(1);
    expect(st.stores.get('s')!.has('b')).toBe(false);
    expect([...st.toRepair.get('s')!].sort()).toEqual(['a', 'b']);
  });

  it('tombstones delete, and a later progress record clears what was to repair', () => {
    const r = new ChangelogRestorer();
    feed(r, [entryEvent('s', 'a', 1, 0), progressEvent(progress(1), 0), entryEvent('s', 'a', 2, 0), fenceEvent('x', 0), entryEvent('s', 'a', undefined, 0), progressEvent(progress(2), 0)]);
    const st = r.finish();
    expect(st.stores.get('s')!.has('a')).toBe(false);
    expect(st.toRepair.size).toBe(0);
    expect(st.progress?.offset).toBe(2);
  });
});

describe('sequence book', () => {
  it('numbers each output partition densely from where the progress record left it', () => {
    const b = SequenceBook.from([['out', 1, 7]]);
    expect([b.take('out', 1), b.take('out', 1), b.take('out', 0), b.take('other', 1)]).toEqual([7, 8, 0, 0]);
    expect(b.entries()).toEqual([
      ['other', 1, 1],
      ['out', 0, 1],
      ['out', 1, 9],
    ]);
    expect(SequenceBook.from(b.entries()).entries()).toEqual(b.entries());
  });
});
