/**
 * A misbehaving producer, run as its own process by quotas.test.ts so that
 * its loop does not share the measuring client's event loop: three loops
 * each send a record, wait for the reply and `pauseMs`, ignoring
 * retryAfterMs, for `durationMs` and on until the hub has refused `minRefusals`
 * of them (at most MAX_MS: on a loaded machine the burst alone can take longer
 * than durationMs); prints what the hub answered, and for how long, as JSON.
 * The pause keeps the flooder from taking a whole CPU of a small machine
 * (which would measure the machine, not the hub) while it still asks for
 * hundreds of times its quota.
 *
 *   node --import tsx test/helpers/flooder.ts WS_URL TOKEN TOPIC RECORD_BYTES DURATION_MS PAUSE_MS [MIN_REFUSALS]
 */
import { WsClient } from './ws-client.ts';

const [url, jwt, topic, recordBytes, durationMs, pauseMs, minRefusals = '0'] = process.argv.slice(2);
const MAX_MS = 30_000;
const c = await WsClient.connect(url);
await c.hello(jwt);
const value = new Uint8Array(Number(recordBytes));
const counts: Record<string, number> = {};
let retryAfterMs = 0;
const start = Date.now();
const end = start + Number(durationMs);
const going = (): boolean => Date.now() < end || ((counts.RATE_LIMITED ?? 0) < Number(minRefusals) && Date.now() < start + MAX_MS);
await Promise.all(
  Array.from({ length: 3 }, async () => {
    while (going()) {
      try {
        await c.produce(topic, [{ v: value }]);
        counts.ack = (counts.ack ?? 0) + 1;
      } catch (e) {
        const err = e as { code: string; details?: { retryAfterMs?: number } };
        counts[err.code] = (counts[err.code] ?? 0) + 1;
        retryAfterMs = err.details?.retryAfterMs ?? retryAfterMs;
      }
      await new Promise((r) => setTimeout(r, Number(pauseMs)));
    }
  }),
);
process.stdout.write(JSON.stringify({ counts, retryAfterMs, elapsedMs: Date.now() - start }) + '\n');
await c.close();
