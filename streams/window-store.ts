/**
 * A store of windowed aggregates, key `<key>\0<start>\0<end>`, with two
 * indexes rebuilt from the keys (so a restore from the changelog rebuilds
 * them too): windows by end time, sorted, for closing windows as stream time
 * passes them; and windows by record key, for session merging.
 */
import type { PartitionMemo } from './nodes.ts';
import { KeyValueStore } from './state-store.ts';

export function windowKey(key: string, start: number, end: number): string {
  return `${key}\u0000${start}\u0000${end}`;
}

export function parseWindowKey(sk: string): { key: string; start: number; end: number } {
  const b = sk.lastIndexOf('\u0000');
  const a = sk.lastIndexOf('\u0000', b - 1);
  return { key: sk.slice(0, a), start: Number(sk.slice(a + 1, b)), end: Number(sk.slice(b + 1)) };
}

/** One window of one record key: its store key and its output key (`<key>@<start>`), built once per window. */
export interface WindowSlot extends PartitionMemo {
  key: string;
  start: number;
  end: number;
  sk: string;
  outKey: string;
  /** `{"key":…,"start":…,"end":…,"value":` — a windowed result's JSON text up to its value, built at the first result of the window. */
  jsonPrefix: string | undefined;
  /** jsonPrefix as UTF-8 bytes, copied into each result's record. */
  jsonPrefixBytes: Uint8Array | undefined;
}

export class WindowStore<A = unknown> extends KeyValueStore<A> {
  /**
   * Record key → the slots of its windows asked for through slot(): a record
   * finds its window's store key with one lookup of its own key and a scan of
   * a few windows, instead of building the store key and hashing it anew.
   * A slot goes when its window is deleted.
   */
  private readonly slots = new Map<string, WindowSlot[]>();
  private readonly byEnd = new Map<number, Set<string>>();
  /** Distinct window ends, ascending. */
  private readonly ends: number[] = [];
  private readonly byKey: Map<string, Set<string>> | undefined;

  constructor(name: string, indexByKey: boolean) {
    super(name);
    this.byKey = indexByKey ? new Map() : undefined;
  }

  private index(sk: string): void {
    const { key, end } = parseWindowKey(sk);
    let s = this.byEnd.get(end);
    if (!s) {
      this.byEnd.set(end, (s = new Set()));
      insertSorted(this.ends, end);
    }
    s.add(sk);
    if (this.byKey) {
      let k = this.byKey.get(key);
      if (!k) this.byKey.set(key, (k = new Set()));
      k.add(sk);
    }
  }

  /** The slot of window [start, end) of `key` (the same object while the window lives). */
  slot(key: string, start: number, end: number): WindowSlot {
    let list = this.slots.get(key);
    if (list === undefined) this.slots.set(key, (list = []));
    for (let i = 0; i < list.length; i++) {
      const w = list[i];
      if (w.start === start && w.end === end) return w;
    }
    const w: WindowSlot = {
      key,
      start,
      end,
      sk: windowKey(key, start, end),
      outKey: `${key}@${start}`,
      jsonPrefix: undefined,
      jsonPrefixBytes: undefined,
      memoKey: undefined,
      memoPartitions: 0,
      memoPartition: 0,
    };
    list.push(w);
    return w;
  }

  private dropSlot(key: string, start: number, end: number): void {
    const list = this.slots.get(key);
    if (list === undefined) return;
    for (let i = 0; i < list.length; i++) {
      if (list[i].start === start && list[i].end === end) {
        list.splice(i, 1);
        break;
      }
    }
    if (list.length === 0) this.slots.delete(key);
  }

  private unindex(sk: string): void {
    const { key, start, end } = parseWindowKey(sk);
    this.dropSlot(key, start, end);
    const s = this.byEnd.get(end);
    if (s) {
      s.delete(sk);
      if (s.size === 0) {
        this.byEnd.delete(end);
        const i = lowerBound(this.ends, end);
        if (this.ends[i] === end) this.ends.splice(i, 1);
      }
    }
    const k = this.byKey?.get(key);
    if (k) {
      k.delete(sk);
      if (k.size === 0) this.byKey!.delete(key);
    }
  }

  override put(sk: string, value: A): void {
    if (!this.has(sk)) this.index(sk);
    super.put(sk, value);
  }

  override delete(sk: string): void {
    if (this.has(sk)) this.unindex(sk);
    super.delete(sk);
  }

  override restore(sk: string, value: A | undefined): void {
    const had = this.has(sk);
    super.restore(sk, value);
    if (value === undefined && had) this.unindex(sk);
    else if (value !== undefined && !had) this.index(sk);
  }

  /** Store keys of the windows of one record key (session stores only). */
  windowsOf(key: string): string[] {
    return [...(this.byKey?.get(key) ?? [])];
  }

  /** Removes and returns the windows whose end is at most `maxEnd`, oldest end first (ties in key order, for determinism). */
  takeEndingBy(maxEnd: number): Array<[string, A]> {
    const out: Array<[string, A]> = [];
    while (this.ends.length && this.ends[0] <= maxEnd) {
      const end = this.ends[0];
      const keys = [...(this.byEnd.get(end) ?? [])].sort();
      for (const k of keys) {
        out.push([k, this.get(k) as A]);
        this.delete(k);
      }
      // delete() dropped the end once its set emptied; guard against an empty set left behind
      if (this.ends[0] === end) this.ends.shift();
    }
    return out;
  }

  /** The earliest window end held, or Infinity. */
  get firstEnd(): number {
    return this.ends.length ? this.ends[0] : Infinity;
  }
}

function lowerBound(a: number[], x: number): number {
  let lo = 0;
  let hi = a.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (a[mid] < x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function insertSorted(a: number[], x: number): void {
  const i = lowerBound(a, x);
  if (a[i] !== x) a.splice(i, 0, x);
}
