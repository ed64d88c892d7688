/**
 * One instance of a windowed-count stream application in a process of its
 * own, so that a test can SIGKILL it mid-stream. argv[2] is a JSON job; it
 * prints `STATE {json}` lines (metrics, assignment, positions) every 100 ms.
 */
import { createClient } from '../../web-client/node.ts';
import { stream } from '../../streams/index.ts';

interface Job {
  wsUrl: string;
  httpUrl: string;
  applicationId: string;
  input: string;
  output: string;
  windowMs: number;
  static: boolean;
  maxPendingRecords?: number;
  /** Slow the handler down (ms per 100 records) so a kill lands mid-stream. */
  throttleMs?: number;
}

const job = JSON.parse(process.argv[2]) as Job;
const client = createClient({ url: job.wsUrl, outbox: 'memory', name: `child-${process.pid}` });
const app = stream(client, {
  applicationId: job.applicationId,
  httpUrl: job.httpUrl,
  staticAssignment: job.static ? 'all' : undefined,
  commitIntervalMs: 50,
  maxPendingRecords: job.maxPendingRecords ?? 500,
  onError: (e) => console.log(`ERROR ${e.message}`),
});
let seen = 0;
app
  .from(job.input)
  .peek(() => {
    if (job.throttleMs && ++seen % 100 === 0) {
      const until = Date.now() + job.throttleMs;
      while (Date.now() < until); // a busy handler: the kill must find work in flight
    }
  })
  .groupByKey()
  .window({ tumblingMs: job.windowMs, graceMs: 3_600_000 })
  .count({ name: 'counts' })
  .to(job.output);
await app.start();
setInterval(() => console.log(`STATE ${JSON.stringify({ metrics: app.metrics(), assignment: app.assignment(), positions: app.positions() })}`), 100);
process.on(
  'SIGTERM',
  () =>
    void app
      .close()
      .then(() => client.close())
      .then(() => process.exit(0)),
);
