/**
 * A fixed-size ring of (time, value) points for a live chart: memory stays
 * bounded however long the page runs or however fast records arrive.
 * Records closer together than `minGapMs` merge into one point (their
 * mean), so the ring covers about `capacity · minGapMs` of time even at
 * 10,000 records a second; records older than the newest point (a replay
 * across partitions interleaves times) merge into the newest, keeping x
 * sorted as uPlot needs.
 */
export class RingSeries {
  private readonly xs: Float64Array;
  private readonly ys: Float64Array;
  private readonly counts: Uint32Array;
  private start = 0;
  private size = 0;
  /** Points ever added (merges not counted): a chart "gains points" when this grows. */
  added = 0;

  constructor(
    readonly capacity: number,
    private readonly minGapMs: number,
  ) {
    this.xs = new Float64Array(capacity);
    this.ys = new Float64Array(capacity);
    this.counts = new Uint32Array(capacity);
  }

  get length(): number {
    return this.size;
  }

  push(timeMs: number, value: number): void {
    if (this.size > 0) {
      const last = (this.start + this.size - 1) % this.capacity;
      if (timeMs - this.xs[last] * 1000 < this.minGapMs) {
        const n = ++this.counts[last];
        this.ys[last] += (value - this.ys[last]) / n;
        return;
      }
    }
    const at = (this.start + this.size) % this.capacity;
    if (this.size < this.capacity) this.size++;
    else this.start = (this.start + 1) % this.capacity;
    this.xs[at] = timeMs / 1000; // uPlot's time scale is in seconds
    this.ys[at] = value;
    this.counts[at] = 1;
    this.added++;
  }

  /** The points oldest first, as fresh arrays (uPlot keeps references to what it is given). */
  ordered(): [Float64Array, Float64Array] {
    const x = new Float64Array(this.size);
    const y = new Float64Array(this.size);
    for (let i = 0; i < this.size; i++) {
      const j = (this.start + i) % this.capacity;
      x[i] = this.xs[j];
      y[i] = this.ys[j];
    }
    return [x, y];
  }

  clear(): void {
    this.start = 0;
    this.size = 0;
  }
}

/** Numeric fields of a value, by dotted path (two levels deep); a bare number is the field "value". */
export function numericFields(value: unknown, out: Array<[string, number]> = [], prefix = '', depth = 0): Array<[string, number]> {
  if (typeof value === 'number' && Number.isFinite(value)) {
    out.push([prefix || 'value', value]);
  } else if (value !== null && typeof value === 'object' && !Array.isArray(value) && !(value instanceof Uint8Array) && depth < 2) {
    for (const k in value as Record<string, unknown>) numericFields((value as Record<string, unknown>)[k], out, prefix ? `${prefix}.${k}` : k, depth + 1);
  }
  return out;
}
