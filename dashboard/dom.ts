/** Small DOM helpers: elements built from text (never from HTML strings holding hub data). */
export { formatBytes } from '../web-client/format.ts';
export function el<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Record<string, string> = {}, ...children: Array<Node | string>): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') e.className = v;
    else e.setAttribute(k, v);
  }
  e.append(...children);
  return e;
}

/** A table with a header row; each row's cells are text or nodes. */
export function table(id: string, header: string[], rows: Array<Array<Node | string | number>>, empty = 'none'): HTMLTableElement {
  const t = el('table', { id });
  t.append(el('thead', {}, el('tr', {}, ...header.map((h) => el('th', {}, h)))));
  const body = t.createTBody();
  if (!rows.length) body.append(el('tr', {}, el('td', { colspan: String(header.length), class: 'muted' }, empty)));
  for (const r of rows) body.append(el('tr', {}, ...r.map((c) => el('td', {}, typeof c === 'number' ? String(c) : c))));
  return t;
}

/** A view owns its timers and subscriptions; the returned function stops them when another view replaces it. */
export type View = (root: HTMLElement) => () => void;

/** Repeats `fn` every `ms` (first run at once), never two runs at a time. */
export function poll(fn: () => Promise<void>, ms: number): () => void {
  let stopped = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const run = async (): Promise<void> => {
    try {
      await fn();
    } catch (err) {
      console.warn('dashboard poll failed', err);
    }
    if (!stopped) timer = setTimeout(run, ms);
  };
  void run();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}

export function errorText(err: unknown): string {
  const e = err as { code?: string; message?: string };
  return e?.code ? `${e.code}: ${e.message}` : String(e?.message ?? err);
}
