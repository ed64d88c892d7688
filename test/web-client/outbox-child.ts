/**
 * A child process for the restart tests: a Node gateway with a file outbox.
 *   node --import tsx test/web-client/outbox-child.ts <url> <file> <topic> <from> <count> <send|flush>
 * `send` queues events {n} for n in [from, from+count) (keys k0..k4), prints
 * "queued", then "acked" at its first ack, and keeps draining until killed; `flush` drains what the file
 * holds, prints "flushed <pending>" and exits.
 */
import { createClient } from '../../web-client/node.ts';

const [url, file, topic, fromArg, countArg, mode] = process.argv.slice(2);
const client = createClient({ url, outbox: { file }, name: 'gateway', backoffMaxMs: 300 });
client.on('error', (e) => process.stderr.write(`client error: ${(e as { code?: string }).code ?? ''} ${e.message}\n`));

if (mode === 'send') {
  const off = client.on('ack', () => {
    off();
    process.stdout.write('acked\n');
  });
  const from = Number(fromArg);
  const sends: Array<Promise<void>> = [];
  for (let n = from; n < from + Number(countArg); n++) sends.push(client.send(topic, { key: `k${n % 5}`, value: { n } }));
  await Promise.all(sends);
  process.stdout.write('queued\n');
  setInterval(() => undefined, 60_000); // stay alive (draining) until the parent kills us
} else {
  await client.flush();
  process.stdout.write(`flushed ${await client.pending()}\n`);
  await client.close();
  process.exit(0);
}
