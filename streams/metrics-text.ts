/**
 * The app's counters and per-partition lag in the Prometheus text format
 * (version 0.0.4), written by hand rather than with prom-client because
 * streams/ runs in browsers too. README "Stream processing" lists the names.
 */
import type { StreamMetrics } from './nodes.ts';

/** One input partition a task holds, as metricsText() reports it. */
export interface PartitionLag {
  topic: string;
  partition: number;
  /** Next input offset to process, -1 before the first record. */
  position: number;
  /** The partition's high watermark (from the hub's HTTP API), when known. */
  highWatermark: number | undefined;
  /** Event time of the last record processed, -1 before the first. */
  lastTimestamp: number;
}

const COUNTERS: Array<[keyof StreamMetrics, string, string]> = [
  ['processed', 'tributary_streams_processed_records_total', 'input records run through the topology'],
  ['produced', 'tributary_streams_produced_records_total', 'records written to output and repartition topics'],
  ['lateAccepted', 'tributary_streams_late_accepted_records_total', 'records for a window that had ended but was within its grace period: counted in'],
  ['lateDropped', 'tributary_streams_late_dropped_records_total', 'records for a window already closed (past grace): dropped'],
  ['skipped', 'tributary_streams_skipped_records_total', 'records below the restored position, skipped on reprocessing'],
  ['restoredRecords', 'tributary_streams_restored_records_total', 'changelog records read back by restores'],
  ['restoredLocalEntries', 'tributary_streams_restored_local_entries_total', 'state entries loaded from IndexedDB by restores (their changelog records not read)'],
  ['flushes', 'tributary_streams_flushes_total', 'flushes (outputs, then changelog, then commit)'],
  ['commits', 'tributary_streams_commits_total', 'input offsets committed after a flush'],
  ['outputWaits', 'tributary_streams_output_waits_total', 'times processing stopped for output acknowledgements (maxPendingRecords unacknowledged)'],
  ['outputWaitMs', 'tributary_streams_output_wait_ms_total', 'milliseconds processing stopped for output acknowledgements'],
];

/** A label value escaped as the text format requires (backslash, double quote, newline). */
function label(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

export function metricsText(app: string, m: StreamMetrics, lags: readonly PartitionLag[], now: number): string {
  const a = `application="${label(app)}"`;
  const out: string[] = [];
  for (const [field, name, help] of COUNTERS) {
    out.push(`# HELP ${name} ${help}`, `# TYPE ${name} counter`, `${name}{${a}} ${Math.round(m[field])}`);
  }
  const where = (l: PartitionLag) => `{${a},topic="${label(l.topic)}",partition="${l.partition}"}`;
  out.push('# HELP tributary_streams_position next input offset to process per input partition this instance holds', '# TYPE tributary_streams_position gauge');
  for (const l of lags) out.push(`tributary_streams_position${where(l)} ${l.position}`);
  out.push('# HELP tributary_streams_lag_records records of the input partition not yet processed (high watermark - position)', '# TYPE tributary_streams_lag_records gauge');
  for (const l of lags) if (l.highWatermark !== undefined) out.push(`tributary_streams_lag_records${where(l)} ${Math.max(0, l.highWatermark - Math.max(0, l.position))}`);
  out.push('# HELP tributary_streams_event_time_lag_ms now - event time of the last record processed, per input partition', '# TYPE tributary_streams_event_time_lag_ms gauge');
  for (const l of lags) if (l.lastTimestamp >= 0) out.push(`tributary_streams_event_time_lag_ms${where(l)} ${now - l.lastTimestamp}`);
  return `${out.join('\n')}\n`;
}
