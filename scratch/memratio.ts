// Same-hub comparison: the bench's load generator row, then the memory-outbox row, twice.
import { startHub } from '../harness/hub.ts';
import { createClient } from '../web-client/node.ts';
import { produce as loadGenerator } from '../bench/load/ws-driver.ts';
import { PROFILES } from '../bench/lib/profiles.ts';
const hub = await startHub({});
try {
  await fetch(`${hub.url}/v1/topics`, { method: 'POST', body: JSON.stringify({ name: 'bench-gen-4p', partitions: 4 }) });
  await fetch(`${hub.url}/v1/topics`, { method: 'POST', body: JSON.stringify({ name: 'bench-client-4p', partitions: 4 }) });
  const total = Number(process.env.N ?? 200_000);
  const value = new Uint8Array(100);
  const chunk = Array.from({ length: 10_000 }, (_, i) => ({ key: `k${i % 64}`, value }));
  for (let round = 0; round < Number(process.env.ROUNDS ?? 2); round++) {
    const gen = await loadGenerator({ kind: 'ws', port: hub.port, hubProtocol: true, topic: 'bench-gen-4p' }, { ...PROFILES.quick.produce, producers: 1, form: 'batch' });
    const genRate = gen.events / (gen.elapsedMs / 1000);
    const mem = createClient({ url: hub.wsUrl, outbox: 'memory', name: `bench-mem-${round}` });
    await mem.pending();
    const t0 = performance.now();
    const c0 = process.cpuUsage();
    for (let sent = 0; sent < total; sent += chunk.length) await mem.sendMany('bench-client-4p', chunk);
    await mem.flush();
    const ms = performance.now() - t0;
    const cu = process.cpuUsage(c0);
    await mem.close();
    const rate = total / (ms / 1000);
    console.log(`gen ${Math.round(genRate)} mem ${Math.round(rate)} ratio ${Math.round((100 * rate) / genRate)}% client cpu ${((cu.user + cu.system) / total).toFixed(2)} us/event`);
  }
} finally { await hub.stop(); hub.cleanup(); }
