/**
 * The progress bar of long produce and consume runs (cli-progress), drawn on
 * stderr only when stderr is a terminal: piped or redirected runs print
 * nothing but their data. With a total it shows percentage and ETA; without
 * one, the count and the rate.
 */
import cliProgress from 'cli-progress';

export interface Progress {
  /** Sets the count of records done (and the bar's value when it measures something else, such as bytes read). */
  update(records: number, value?: number): void;
  stop(): void;
}

const NONE: Progress = { update: () => undefined, stop: () => undefined };

/** Redraws at most this often: a bar that redraws per record would cost more than the records. */
const REDRAW_FPS = 5;

export function startProgress(opts: { label: string; enabled: boolean; total?: number; unit?: string }): Progress {
  if (!opts.enabled) return NONE;
  const withTotal = opts.total !== undefined && opts.total > 0;
  const format = withTotal ? `${opts.label} [{bar}] {percentage}% | {records} records | {rate}/s | ETA {eta_formatted}` : `${opts.label} {records} records | {rate}/s | {duration_formatted}`;
  const bar = new cliProgress.SingleBar({ format, stream: process.stderr, fps: REDRAW_FPS, hideCursor: true, clearOnComplete: false, etaBuffer: 50 }, cliProgress.Presets.shades_classic);
  const started = Date.now();
  bar.start(withTotal ? opts.total! : 0, 0, { records: 0, rate: 0 });
  let stopped = false;
  return {
    update(records, value) {
      const secs = (Date.now() - started) / 1000;
      const rate = secs > 0 ? Math.round(records / secs) : 0;
      bar.update(withTotal ? Math.min(value ?? records, opts.total!) : records, { records, rate });
    },
    stop() {
      if (stopped) return;
      stopped = true;
      bar.stop();
    },
  };
}
