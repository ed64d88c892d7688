import { startNatsCluster } from './test/helpers/nats.ts';
import { startHub } from './test/helpers/hub.ts';
import { createClient } from './web-client/index.ts';
import { createTopic } from './test/web-client/topic-reader.ts';
const c = await startNatsCluster({ nodes: 3 });
const a = await startHub({ args: ['--engine', c.servers], env: { TRIBUTARY_LOG_LEVEL: 'info' } });
const b = await startHub({ args: ['--engine', c.servers], env: { TRIBUTARY_LOG_LEVEL: 'debug' } });
await createTopic(a.url, 'orders', 3);
while ((await fetch(`${b.url}/v1/topics/orders`)).status !== 200) await new Promise(r => setTimeout(r, 20));
const got: any[] = [];
const cons = createClient({ url: b.wsUrl, outbox: 'memory', name: 'y' });
cons.on('state', (s) => console.log('consumer state', s));
cons.subscribe('orders', { from: 'earliest' }, (r) => void got.push(r));
const p = createClient({ url: a.wsUrl, outbox: 'memory', name: 'x' });
const t0 = Date.now();
for (let n = 0; n < 3000; n++) {
  await p.send('orders', { key: `k${n % 11}`, value: { n } });
  if (n === 1000) { await p.flush(); console.log('killing', Date.now() - t0, got.length); await c.nodes[1].kill(); }
  if (n % 250 === 249) { await p.flush(); console.log(n, Date.now() - t0, await p.pending(), got.length); }
}
for (let i = 0; i < 20 && got.length < 3000; i++) await new Promise(r => setTimeout(r, 1000));
console.log('got', got.length, Date.now() - t0);
const parts = [0,1,2].map(pp => got.filter(r => r.partition === pp).length); console.log(parts);
console.log(JSON.stringify(await (await fetch(`${b.url}/v1/topics/orders`)).json()));
console.log(b.output().split('\n').filter(l => !/"level":(20|30)/.test(l)).slice(-15).join('\n'));
await p.close(); await cons.close(); await a.stop(); await b.stop(); await c.stop();
