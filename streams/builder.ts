/**
 * The typed builder: KStream, GroupedStream, WindowedStream, KTable. Every
 * step adds a processor node holding the application's plain function; the
 * Topology records the roots (input topics and internal repartition topics),
 * the stores under each root, and the topics written to.
 */
import { partitionForKey, TributaryError } from '../protocol/index.ts';
import { AggregateNode, SessionWindowNode, TimeWindowNode, type Adder, type EmitMode, type Initializer, type Merger, type WindowResult } from './aggregate-nodes.ts';
import {
  BranchNode,
  FilterNode,
  FlatMapNode,
  MapNode,
  MapValuesNode,
  PassNode,
  PeekNode,
  RekeyNode,
  SinkNode,
  SourceNode,
  TableJoinNode,
  type ProcessorNode,
  type Rec,
  type RecUpdate,
} from './nodes.ts';
import { normalizeWindows, type WindowSpec } from './windows.ts';

export type StartFrom = 'earliest' | 'latest' | { timestamp: number };
/**
 * How a source's values reach the steps: 'decoded' (default) as decoded
 * values; 'view': a JSON object value as a read-only view whose fields are
 * decoded when read (streams/json-view.ts says what differs).
 */
export type ValuesMode = 'decoded' | 'view';

export interface StoreDef {
  name: string;
  kind: 'kv' | 'window' | 'session';
}

/** Where a sub-graph starts: an input topic or an internal repartition topic. Each has its own changelog. */
export interface RootDef {
  topic: string;
  node: SourceNode;
  internal: boolean;
  from: StartFrom;
  /** `<app>-<name>-changelog`. */
  changelogName: string;
  stores: StoreDef[];
  /** Partition count to create an internal topic with (default: that of the topic feeding it). */
  partitions?: number;
  /** For a repartition topic: the root feeding it, whose partition count it takes by default. */
  feed?: RootDef;
}

export class Topology {
  readonly roots = new Map<string, RootDef>();
  readonly outputs = new Set<string>();
  readonly tables = new Map<string, { topic: string }>();
  private counter = 0;

  constructor(readonly applicationId: string) {}

  nextName(kind: string): string {
    return `${kind}-${++this.counter}`;
  }

  addRoot(topic: string, internal: boolean, from: StartFrom, changelogName: string, feed?: RootDef, partitions?: number, values: ValuesMode = 'decoded'): RootDef {
    if (this.roots.has(topic)) throw new TributaryError('BAD_REQUEST', `topic ${topic} is read twice: use one from() and share the stream`);
    const root: RootDef = { topic, node: new SourceNode(topic, values === 'view'), internal, from, changelogName, stores: [], feed, partitions };
    this.roots.set(topic, root);
    return root;
  }

  addStore(root: RootDef, name: string, kind: StoreDef['kind']): void {
    for (const r of this.roots.values()) for (const s of r.stores) if (s.name === name) throw new TributaryError('BAD_REQUEST', `store name ${name} is used twice`);
    root.stores.push({ name, kind });
  }

  changelogTopic(root: RootDef): string {
    return `${this.applicationId}-${root.changelogName}-changelog`;
  }
}

export class KStream<K, V> {
  constructor(
    protected readonly topo: Topology,
    readonly node: ProcessorNode,
    /** The single root this stream descends from (undefined after merging streams of different roots). */
    readonly root: RootDef | undefined,
    /** True once a step may have changed the key since the root: a stateful step must repartition first. */
    readonly keyChanged: boolean,
  ) {}

  private then<K2, V2>(n: ProcessorNode, keyChanged = this.keyChanged): KStream<K2, V2> {
    this.node.children.push(n);
    return new KStream<K2, V2>(this.topo, n, this.root, keyChanged);
  }

  /** New key and/or value (and optionally timestamp, headers). */
  map<K2, V2>(fn: (r: Rec<K, V>) => RecUpdate<K2, V2> & { key: K2 }): KStream<K2, V2> {
    return this.then(new MapNode(fn as (r: Rec) => RecUpdate<unknown, unknown>), true);
  }

  mapValues<V2>(fn: (r: Rec<K, V>) => V2): KStream<K, V2> {
    return this.then(new MapValuesNode(fn as (r: Rec) => unknown));
  }

  selectKey<K2>(fn: (r: Rec<K, V>) => K2): KStream<K2, V> {
    const f = fn as (r: Rec) => unknown;
    return this.then(new RekeyNode(f), true);
  }

  filter(pred: (r: Rec<K, V>) => boolean): KStream<K, V> {
    return this.then(new FilterNode(pred as (r: Rec) => boolean));
  }

  flatMap<K2, V2>(fn: (r: Rec<K, V>) => Iterable<RecUpdate<K2, V2>>): KStream<K2, V2> {
    return this.then(new FlatMapNode(fn as (r: Rec) => Iterable<RecUpdate<unknown, unknown>>), true);
  }

  flatMapValues<V2>(fn: (r: Rec<K, V>) => Iterable<V2>): KStream<K, V2> {
    const f = fn as (r: Rec) => Iterable<unknown>;
    return this.then(new FlatMapNode((r) => Array.from(f(r), (value) => ({ value }))));
  }

  peek(fn: (r: Rec<K, V>) => void): KStream<K, V> {
    return this.then(new PeekNode(fn as (r: Rec) => void));
  }

  /** One stream per predicate: a record goes to the first whose predicate holds; matching none, it is dropped. */
  branch(...preds: Array<(r: Rec<K, V>) => boolean>): Array<KStream<K, V>> {
    const b = new BranchNode(preds as Array<(r: Rec) => boolean>);
    this.node.children.push(b);
    return b.branches.map((n) => new KStream<K, V>(this.topo, n, this.root, this.keyChanged));
  }

  merge(other: KStream<K, V>): KStream<K, V> {
    const n = new PassNode();
    this.node.children.push(n);
    other.node.children.push(n);
    return new KStream<K, V>(this.topo, n, this.root === other.root ? this.root : undefined, this.keyChanged || other.keyChanged);
  }

  /** Joins each record with the table's latest value for its key; `left` keeps records without one (table value null). */
  join<T, V2>(table: Table<T>, joiner: (r: Rec<K, V>, tableValue: T) => V2, opts: { left?: boolean } = {}): KStream<K, V2> {
    return this.then(new TableJoinNode(table.topic, joiner as (r: Rec, t: unknown) => unknown, opts.left === true));
  }

  /** Writes every record to `topic`, in the partition of its key. */
  to(topic: string): void {
    this.topo.outputs.add(topic);
    this.node.children.push(new SinkNode(topic, partitionForKey));
  }

  /**
   * Re-keys and groups: records go through `<app>-<name>-repartition`, keyed
   * by `fn`, so every record of a key is in one partition, in the order it
   * had in its input partition.
   */
  groupBy<K2 extends string | number>(fn: (r: Rec<K, V>) => K2, opts: { name?: string; partitions?: number } = {}): GroupedStream<string, V> {
    return this.selectKey(fn).repartition(opts.name ?? this.topo.nextName('groupby'), opts.partitions);
  }

  /** Groups by the current key; repartitions only when a step changed the key or merged roots. */
  groupByKey(opts: { name?: string; partitions?: number } = {}): GroupedStream<string, V> {
    if (!this.keyChanged && this.root) return new GroupedStream<string, V>(this.topo, this.node, this.root);
    return this.repartition(opts.name ?? this.topo.nextName('groupby'), opts.partitions);
  }

  private repartition(name: string, partitions: number | undefined): GroupedStream<string, V> {
    const topic = `${this.topo.applicationId}-${name}-repartition`;
    this.node.children.push(new SinkNode(topic, partitionForKey));
    const root = this.topo.addRoot(topic, true, 'earliest', name, this.root, partitions);
    return new GroupedStream<string, V>(this.topo, root.node, root);
  }
}

export type WindowOptions = WindowSpec & { emit?: EmitMode };

export class GroupedStream<K, V> {
  constructor(
    private readonly topo: Topology,
    private readonly node: ProcessorNode,
    private readonly root: RootDef,
  ) {}

  aggregate<A>(init: Initializer<A>, adder: Adder<K, V, A>, opts: { name?: string } = {}): KTable<K, A> {
    const name = opts.name ?? this.topo.nextName('aggregate');
    this.topo.addStore(this.root, name, 'kv');
    const n = new AggregateNode(name, init, adder as Adder<unknown, unknown, unknown>);
    this.node.children.push(n);
    return new KTable<K, A>(this.topo, n, this.root);
  }

  count(opts: { name?: string } = {}): KTable<K, number> {
    return this.aggregate<number>(
      () => 0,
      (n) => n + 1,
      opts,
    );
  }

  reduce(fn: (a: V, b: V) => V, opts: { name?: string } = {}): KTable<K, V> {
    return this.aggregate<V>(
      () => undefined as V,
      (acc, r) => (acc === undefined ? r.value : fn(acc, r.value)),
      opts,
    );
  }

  window(spec: WindowOptions): WindowedStream<K, V> {
    return new WindowedStream<K, V>(this.topo, this.node, this.root, spec);
  }
}

export class WindowedStream<K, V> {
  constructor(
    private readonly topo: Topology,
    private readonly node: ProcessorNode,
    private readonly root: RootDef,
    private readonly spec: WindowOptions,
  ) {}

  /** Session windows need `merger` to combine two sessions' aggregates when a record bridges them. */
  aggregate<A>(init: Initializer<A>, adder: Adder<K, V, A>, opts: { name?: string; merger?: Merger<A> } = {}): KTable<string, WindowResult<K, A>> {
    const w = normalizeWindows(this.spec);
    const emit = this.spec.emit ?? 'update';
    if (emit !== 'update' && emit !== 'final') throw new TributaryError('BAD_REQUEST', "emit is 'update' or 'final'");
    const name = opts.name ?? this.topo.nextName('aggregate');
    let n: ProcessorNode;
    if (w.kind === 'time') {
      this.topo.addStore(this.root, name, 'window');
      n = new TimeWindowNode(name, w, init, adder as Adder<unknown, unknown, unknown>, emit);
    } else {
      if (!opts.merger) throw new TributaryError('BAD_REQUEST', 'a session-window aggregate needs opts.merger');
      this.topo.addStore(this.root, name, 'session');
      n = new SessionWindowNode(name, w, init, adder as Adder<unknown, unknown, unknown>, opts.merger as Merger<unknown>, emit);
    }
    this.node.children.push(n);
    return new KTable<string, WindowResult<K, A>>(this.topo, n, this.root);
  }

  count(opts: { name?: string } = {}): KTable<string, WindowResult<K, number>> {
    return this.aggregate<number>(
      () => 0,
      (n) => n + 1,
      { ...opts, merger: (a, b) => a + b },
    );
  }

  reduce(fn: (a: V, b: V) => V, opts: { name?: string } = {}): KTable<string, WindowResult<K, V>> {
    const pick = (a: V, b: V): V => (a === undefined ? b : b === undefined ? a : fn(a, b));
    return this.aggregate<V>(
      () => undefined as V,
      (acc, r) => pick(acc, r.value),
      { ...opts, merger: pick },
    );
  }
}

/** The changes of an aggregate: one record per update (or per closed window with emit 'final'). */
export class KTable<K, V> {
  constructor(
    private readonly topo: Topology,
    private readonly node: ProcessorNode,
    private readonly root: RootDef,
  ) {}

  toStream(): KStream<K, V> {
    return new KStream<K, V>(this.topo, this.node, this.root, false);
  }

  to(topic: string): void {
    this.toStream().to(topic);
  }
}

/** A latest-value table read from a (compacted) topic, whole, by every instance: Kafka's GlobalKTable. */
export interface Table<T> {
  readonly topic: string;
  get(key: string): T | undefined;
  readonly size: number;
}
