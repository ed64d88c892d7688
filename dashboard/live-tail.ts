/**
 * The live tail of a topic: a count of every record received, the offset
 * range seen per partition, and the newest TAIL_ROWS records. Records only
 * go into a ring; the list is redrawn at most once per animation frame, so
 * 10,000 records a second cost a few DOM updates a second, not 10,000.
 */
import type { ConsumedRecord } from '../web-client/index.ts';

const TAIL_ROWS = 50;
const VALUE_CHARS = 160;

function show(x: unknown): string {
  if (x === null || x === undefined) return '';
  if (x instanceof Uint8Array) return `(${x.length} bytes)`;
  const s = typeof x === 'string' ? x : JSON.stringify(x);
  return s.length > VALUE_CHARS ? `${s.slice(0, VALUE_CHARS)}…` : s;
}

export class LiveTail {
  private readonly ring: Array<ConsumedRecord | undefined> = new Array(TAIL_ROWS);
  private next = 0;
  count = 0;
  private readonly ranges = new Map<number, [number, number]>();
  private frame = 0;
  private readonly summary: HTMLElement;
  private readonly body: HTMLTableSectionElement;

  constructor(root: HTMLElement) {
    this.summary = document.createElement('p');
    this.summary.id = 'tail-summary';
    const table = document.createElement('table');
    table.id = 'tail';
    table.innerHTML = '<thead><tr><th>partition</th><th>offset</th><th>time</th><th>key</th><th>value</th></tr></thead>';
    this.body = table.createTBody();
    root.append(this.summary, table);
    this.render();
  }

  add(r: ConsumedRecord): void {
    this.count++;
    this.ring[this.next] = r;
    this.next = (this.next + 1) % TAIL_ROWS;
    const range = this.ranges.get(r.partition);
    if (range) range[1] = r.offset;
    else this.ranges.set(r.partition, [r.offset, r.offset]);
    if (!this.frame) this.frame = requestAnimationFrame(() => this.render());
  }

  clear(): void {
    this.ring.fill(undefined);
    this.next = 0;
    this.count = 0;
    this.ranges.clear();
    this.render();
  }

  private render(): void {
    this.frame = 0;
    const parts = [...this.ranges].sort((a, b) => a[0] - b[0]).map(([p, [a, b]]) => `p${p}: ${a}–${b}`);
    this.summary.textContent = `${this.count} records${parts.length ? ` · ${parts.join(', ')}` : ''}`;
    this.summary.dataset.count = String(this.count);
    const rows: HTMLTableRowElement[] = [];
    for (let i = 1; i <= TAIL_ROWS; i++) {
      const r = this.ring[(this.next - i + TAIL_ROWS) % TAIL_ROWS];
      if (!r) break;
      const tr = document.createElement('tr');
      for (const text of [String(r.partition), String(r.offset), new Date(r.timestamp).toISOString().slice(11, 23), show(r.key), show(r.value)]) {
        const td = document.createElement('td');
        td.textContent = text;
        tr.append(td);
      }
      rows.push(tr);
    }
    this.body.replaceChildren(...rows);
  }

  destroy(): void {
    if (this.frame) cancelAnimationFrame(this.frame);
    this.frame = 0;
  }
}
