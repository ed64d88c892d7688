/**
 * Live charts of the numeric fields of a topic's values (uPlot). Records
 * only go into ring buffers (ring-series.ts); the charts are redrawn at
 * most once per animation frame, with one setData per chart, as in uPlot's
 * streaming examples. Memory is bounded by MAX_FIELDS × POINTS_PER_CHART
 * whatever the rate.
 */
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import { numericFields, RingSeries } from './ring-series.ts';

/** Fields charted per topic: the first ones seen (a value with 500 numbers would otherwise make 500 charts). */
const MAX_FIELDS = 6;
const POINTS_PER_CHART = 2_400;
/** Records closer than this merge into one point: 2,400 points then span at least 60 s at any rate. */
const MIN_POINT_GAP_MS = 25;
const CHART_HEIGHT_PX = 160;

interface Chart {
  field: string;
  ring: RingSeries;
  plot: uPlot;
  box: HTMLElement;
  dirty: boolean;
}

export class LiveCharts {
  private readonly charts = new Map<string, Chart>();
  private frame = 0;
  private readonly empty: HTMLElement;

  constructor(private readonly root: HTMLElement) {
    this.empty = document.createElement('p');
    this.empty.className = 'muted';
    this.empty.textContent = 'No numeric fields yet: charts appear for the numbers in the values as records arrive.';
    root.append(this.empty);
  }

  add(timestampMs: number, value: unknown): void {
    for (const [field, n] of numericFields(value)) {
      let c = this.charts.get(field);
      if (!c) {
        if (this.charts.size >= MAX_FIELDS) continue;
        c = this.create(field);
      }
      c.ring.push(timestampMs, n);
      c.dirty = true;
    }
    if (!this.frame) this.frame = requestAnimationFrame(() => this.draw());
  }

  private create(field: string): Chart {
    this.empty.remove();
    const box = document.createElement('div');
    box.className = 'chart';
    box.dataset.field = field;
    box.dataset.points = '0';
    this.root.append(box);
    const plot = new uPlot(
      {
        title: field,
        width: Math.max(300, this.root.clientWidth - 8),
        height: CHART_HEIGHT_PX,
        series: [{}, { label: field, stroke: '#2f6fde', width: 1, points: { show: false } }],
        axes: [{}, { size: 60 }],
        legend: { show: false },
        cursor: { drag: { x: false, y: false } },
      },
      [[], []],
      box,
    );
    const c: Chart = { field, ring: new RingSeries(POINTS_PER_CHART, MIN_POINT_GAP_MS), plot, box, dirty: false };
    this.charts.set(field, c);
    return c;
  }

  private draw(): void {
    this.frame = 0;
    for (const c of this.charts.values()) {
      if (!c.dirty) continue;
      c.dirty = false;
      c.plot.setData(c.ring.ordered());
      // For tests and the curious: how many points the chart has gained and holds.
      c.box.dataset.points = String(c.ring.added);
      c.box.dataset.held = String(c.ring.length);
    }
  }

  /** Starts over (a new replay): the old points would mix two timelines. */
  clear(): void {
    for (const c of this.charts.values()) {
      c.plot.destroy();
      c.box.remove();
    }
    this.charts.clear();
    this.root.append(this.empty);
  }

  destroy(): void {
    if (this.frame) cancelAnimationFrame(this.frame);
    this.frame = 0;
    this.clear();
  }
}
