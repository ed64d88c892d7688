/**
 * `tributary produce TOPIC`: each line of stdin (or --file) becomes one
 * record whose value is the line as a string, or the line parsed as JSON
 * with --json. Records go through the web client's producer (batches of up
 * to 1,000 records, idempotent), so 10,000 lines take a few round trips,
 * not 10,000. The run ends once every record is acked; refused records are
 * reported and make the exit status 1.
 */
import fs from 'node:fs';
import readline from 'node:readline';
import { Command } from 'commander';
import type { SendEvent } from '../web-client/node.ts';
import { action, adminOf, clientOf, hubTarget, parseCount, UsageError } from './hub-context.ts';
import { startProgress } from './progress.ts';

/**
 * Lines handed to send() before awaiting them together: the memory outbox
 * takes them in one group commit, and the drain keeps several batches in flight.
 */
const SEND_CHUNK_LINES = 2_000;
/** Outbox depth at which reading pauses until the hub catches up (the outbox refuses at 100,000). */
const MAX_UNACKED_EVENTS = 50_000;

interface ProduceOptions {
  key?: string;
  json?: boolean;
  file?: string;
  partition?: string;
}

export function produceCommand(): Command {
  return new Command('produce')
    .argument('<topic>')
    .description('produce each line of stdin (or --file) as one record')
    .option('-k, --key <key>', 'the key of every record (records of one key keep their order in one partition)')
    .option('--json', 'parse each line as JSON and send the value as JSON (blank lines are skipped)')
    .option('-f, --file <path>', 'read lines from this file instead of stdin')
    .option('--partition <p>', 'send every record to this partition')
    .action(action((topic: string, opts: ProduceOptions, cmd: Command) => produce(topic, opts, cmd)));
}

async function produce(topic: string, opts: ProduceOptions, cmd: Command): Promise<void> {
  const target = hubTarget(cmd);
  const partition = opts.partition === undefined ? undefined : parseCount('--partition', opts.partition);
  // Fails fast on an unknown topic or an unreachable hub, before any line is read.
  await adminOf(target).describeTopic(topic);
  let input: NodeJS.ReadableStream = process.stdin;
  let totalBytes: number | undefined;
  if (opts.file !== undefined) {
    try {
      totalBytes = fs.statSync(opts.file).size;
    } catch (err) {
      throw new UsageError(`--file ${opts.file}: ${(err as Error).message}`);
    }
    input = fs.createReadStream(opts.file);
  }
  const client = await clientOf(target, `cli-produce-${process.pid}`);
  let acked = 0;
  let fatal: Error | undefined;
  client.on('ack', (a) => (acked += a.records.length));
  client.on('error', (e) => {
    // Refused records land in failed() and are reported at the end; a refused login ends the run.
    if ((e as { code?: string }).code === 'AUTH_FAILED') fatal = e;
  });
  let bytesRead = 0;
  let lineNo = 0;
  const progress = startProgress({ label: `produce ${topic}`, enabled: process.stderr.isTTY === true, total: totalBytes });
  // The bar's value is the bytes of the lines acked so far (estimated from the mean line length), so its ETA is the hub's pace, not the reader's.
  const ackedBytes = (): number => (lineNo ? Math.round((acked * bytesRead) / lineNo) : 0);
  const tick = setInterval(() => progress.update(acked, ackedBytes()), 200);

  let chunk: Array<Promise<void>> = [];
  try {
    const lines = readline.createInterface({ input, crlfDelay: Infinity });
    for await (const line of lines) {
      lineNo++;
      bytesRead += Buffer.byteLength(line) + 1;
      if (fatal) throw fatal;
      const event = toEvent(line, lineNo, opts, partition);
      if (!event) continue;
      chunk.push(client.send(topic, event));
      if (chunk.length >= SEND_CHUNK_LINES) {
        await Promise.all(chunk);
        chunk = [];
        while ((await client.pending()) > MAX_UNACKED_EVENTS) {
          if (fatal) throw fatal;
          await new Promise((r) => setTimeout(r, 20));
        }
      }
    }
    await Promise.all(chunk);
    await Promise.race([
      client.flush(),
      new Promise((_, reject) => {
        const t = setInterval(() => fatal && (clearInterval(t), reject(fatal)), 100);
        t.unref();
      }),
    ]);
    const failed = await client.failed();
    progress.update(acked, ackedBytes());
    progress.stop();
    if (failed.length) {
      const codes = new Map<string, number>();
      for (const f of failed) codes.set(f.code, (codes.get(f.code) ?? 0) + 1);
      throw new Error(`${failed.length} of ${acked + failed.length} records were refused: ${[...codes].map(([c, n]) => `${c} ×${n}`).join(', ')}`);
    }
    if (!process.stderr.isTTY) return;
    process.stderr.write(`produced ${acked} records to ${topic}\n`);
  } finally {
    clearInterval(tick);
    progress.stop();
    await client.close();
  }
}

function toEvent(line: string, lineNo: number, opts: ProduceOptions, partition: number | undefined): SendEvent | undefined {
  let value: unknown = line;
  if (opts.json) {
    if (line.trim() === '') return undefined;
    try {
      value = JSON.parse(line);
    } catch (err) {
      throw new UsageError(`line ${lineNo} is not JSON (--json): ${(err as Error).message}`);
    }
  }
  const event: SendEvent = { value };
  if (opts.key !== undefined) event.key = opts.key;
  if (partition !== undefined) event.partition = partition;
  return event;
}
