/**
 * Stateful steps: aggregate (count and reduce are aggregates) per key, per
 * time window and per session. Each reads and writes its store in the task's
 * context; whatever it forwards is a pure function of the input partition's
 * records and the state before them, which is what makes reprocessing
 * produce the same outputs with the same sequences.
 */
import { keyString, ProcessorNode, type Rec, type TaskContext } from './nodes.ts';
import { isClosed, windowStartsFor, type NormalizedWindows } from './windows.ts';
import { parseWindowKey, windowKey, WindowStore, type WindowSlot } from './window-store.ts';

const utf8 = new TextEncoder();

export type Initializer<A> = () => A;
export type Adder<K, V, A> = (acc: A, r: Rec<K, V>) => A;
export type Merger<A> = (a: A, b: A) => A;

/** `update`: every change of a window is forwarded (Kafka's default); `final`: one result per window, when it closes. */
export type EmitMode = 'update' | 'final';

/** The value of a windowed result. Its record key is `<key>@<start>`, so a compacted topic keeps the latest per window. */
export interface WindowResult<K, A> {
  key: K;
  start: number;
  end: number;
  value: A;
}

/**
 * A windowed result as the steps after the window see it (a plain
 * WindowResult to them). A sink writes a count's JSON text from the text
 * its window built once (jsonText): a result per input record, so no
 * JSON.stringify of a new object per record. The text is what
 * JSON.stringify gives (fields in this order).
 */
export class WindowResultValue implements WindowResult<string, unknown> {
  readonly #slot: WindowSlot | undefined;
  constructor(
    readonly key: string,
    readonly start: number,
    readonly end: number,
    readonly value: unknown,
    slot?: WindowSlot,
  ) {
    this.#slot = slot;
  }

  /** The JSON text when the value is a finite number and the window's text applies; undefined otherwise (encode the object). */
  jsonText(): string | undefined {
    const head = this.jsonHead();
    return head === undefined ? undefined : `${head}${this.value as number}}`;
  }

  /** The JSON text up to the value (the window's, built once) when the value is a finite number and the text applies; the text is head + value + "}". */
  jsonHead(): string | undefined {
    const s = this.#slot;
    const v = this.value;
    if (s === undefined || typeof v !== 'number' || !Number.isFinite(v) || s.key !== this.key || s.start !== this.start || s.end !== this.end) return undefined;
    return (s.jsonPrefix ??= `{"key":${JSON.stringify(s.key)},"start":${s.start},"end":${s.end},"value":`);
  }

  /** jsonHead() as UTF-8 bytes (built once per window). */
  jsonHeadBytes(): Uint8Array | undefined {
    const head = this.jsonHead();
    if (head === undefined) return undefined;
    return (this.#slot!.jsonPrefixBytes ??= utf8.encode(head));
  }
}

export class AggregateNode extends ProcessorNode {
  constructor(
    readonly storeName: string,
    private readonly init: Initializer<unknown>,
    private readonly adder: Adder<unknown, unknown, unknown>,
  ) {
    super();
  }
  process(t: TaskContext, r: Rec): void {
    const store = t.store<unknown>(this.storeName);
    const k = keyString(r.key);
    const had = store.get(k);
    const prev = had === undefined ? this.init() : had;
    const next = this.adder(prev, r);
    store.put(k, next);
    this.forward(t, { key: k, value: next, timestamp: r.timestamp, headers: r.headers, topic: r.topic, partition: r.partition, offset: r.offset });
  }
}

abstract class WindowedNode extends ProcessorNode {
  constructor(
    readonly storeName: string,
    protected readonly init: Initializer<unknown>,
    protected readonly adder: Adder<unknown, unknown, unknown>,
    protected readonly emit: EmitMode,
  ) {
    super();
  }

  protected result(t: TaskContext, key: string, start: number, end: number, value: unknown, timestamp: number, r?: Rec, slot?: WindowSlot): void {
    const out = value === null ? null : new WindowResultValue(key, start, end, value, slot);
    this.forward(t, { key: slot?.outKey ?? `${key}@${start}`, value: out, timestamp, headers: r?.headers ?? [], topic: r?.topic, partition: r?.partition, offset: r?.offset, partitionMemo: slot });
  }

  /** Closes every window that ends at or before `closeBefore` (stream time − grace): final results go out now. */
  protected close(t: TaskContext, store: WindowStore, closeBefore: number): void {
    if (store.firstEnd > closeBefore) return;
    for (const [sk, value] of store.takeEndingBy(closeBefore)) {
      if (this.emit !== 'final') continue;
      const { key, start, end } = parseWindowKey(sk);
      this.result(t, key, start, end, value, end);
    }
  }
}

export class TimeWindowNode extends WindowedNode {
  constructor(
    storeName: string,
    private readonly w: Extract<NormalizedWindows, { kind: 'time' }>,
    init: Initializer<unknown>,
    adder: Adder<unknown, unknown, unknown>,
    emit: EmitMode,
  ) {
    super(storeName, init, adder, emit);
  }

  process(t: TaskContext, r: Rec): void {
    const store = t.store<unknown>(this.storeName) as WindowStore;
    const before = t.streamTime(this.storeName);
    const st = r.timestamp > before ? r.timestamp : before;
    if (st !== before) t.setStreamTime(this.storeName, st);
    const k = keyString(r.key);
    const size = this.w.sizeMs;
    let accepted = 0;
    let late = false;
    const advance = this.w.advanceMs;
    // Tumbling windows (advance = size): one window, no array of starts per record.
    const first = advance === size ? r.timestamp - (((r.timestamp % size) + size) % size) : 0;
    const starts = advance === size ? undefined : windowStartsFor(r.timestamp, size, advance);
    for (let i = 0, n = starts ? starts.length : 1; i < n; i++) {
      const start = starts ? starts[i] : first;
      const end = start + size;
      if (isClosed(end, this.w.graceMs, st)) continue;
      if (end <= st) late = true;
      accepted++;
      const w = store.slot(k, start, end);
      const had = store.get(w.sk);
      const next = this.adder(had === undefined ? this.init() : had, r);
      store.put(w.sk, next);
      if (this.emit === 'update') this.result(t, k, start, end, next, r.timestamp, r, w);
    }
    if (accepted === 0) t.metrics.lateDropped++;
    else if (late) t.metrics.lateAccepted++;
    if (st !== before) this.close(t, store, st - this.w.graceMs);
  }
}

export class SessionWindowNode extends WindowedNode {
  constructor(
    storeName: string,
    private readonly w: Extract<NormalizedWindows, { kind: 'session' }>,
    init: Initializer<unknown>,
    adder: Adder<unknown, unknown, unknown>,
    private readonly merger: Merger<unknown>,
    emit: EmitMode,
  ) {
    super(storeName, init, adder, emit);
  }

  process(t: TaskContext, r: Rec): void {
    const store = t.store<unknown>(this.storeName) as WindowStore;
    const before = t.streamTime(this.storeName);
    const st = r.timestamp > before ? r.timestamp : before;
    if (st !== before) t.setStreamTime(this.storeName, st);
    const { gapMs, graceMs } = this.w;
    const ts = r.timestamp;
    // A session can take no more records once no in-grace record can fall within its gap.
    if (ts + gapMs + graceMs <= st) {
      t.metrics.lateDropped++;
      return;
    }
    if (ts + gapMs <= st) t.metrics.lateAccepted++;
    const k = keyString(r.key);
    const touching = store
      .windowsOf(k)
      .map(parseWindowKey)
      .filter((s) => s.end + gapMs >= ts && s.start - gapMs <= ts)
      .sort((a, b) => a.start - b.start);
    let agg = this.init();
    let start = ts;
    let end = ts;
    for (const s of touching) {
      const sk = windowKey(k, s.start, s.end);
      agg = this.merger(agg, store.get(sk));
      store.delete(sk);
      if (this.emit === 'update') this.result(t, k, s.start, s.end, null, ts, r);
      if (s.start < start) start = s.start;
      if (s.end > end) end = s.end;
    }
    agg = this.adder(agg, r);
    store.put(windowKey(k, start, end), agg);
    if (this.emit === 'update') this.result(t, k, start, end, agg, ts, r);
    // Sessions are indexed by their last event's time: closed once stream time passes it by gap + grace.
    if (st !== before) this.close(t, store, st - gapMs - graceMs);
  }
}
