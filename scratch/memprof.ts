import { startHub } from '../harness/hub.ts';
import { createClient } from '../web-client/node.ts';
const hub = await startHub({});
try {
  await fetch(`${hub.url}/v1/topics`, { method: 'POST', body: JSON.stringify({ name: 'bench-client-4p', partitions: 4 }) });
  const mem = createClient({ url: hub.wsUrl, outbox: 'memory', name: 'bench-mem' });
  await mem.pending();
  const value = new Uint8Array(100);
  const chunk = Array.from({ length: 10_000 }, (_, i) => ({ key: `k${i % 64}`, value }));
  const total = Number(process.env.N ?? 400_000);
  const t0 = performance.now();
  for (let sent = 0; sent < total; sent += chunk.length) await mem.sendMany('bench-client-4p', chunk);
  await mem.flush();
  const ms = performance.now() - t0;
  console.log('rate', Math.round(total / (ms / 1000)));
  await mem.close();
} finally { await hub.stop(); hub.cleanup(); }
