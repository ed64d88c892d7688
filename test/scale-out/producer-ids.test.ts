/**
 * Producer ids in JetStream's message ids. A producer's batch is published
 * with the message id `<producer id>:<first>-<last>` (JetStream's duplicate
 * detection answers a retry through any hub), in a header line. A header
 * value is trimmed, so producers ' a' and 'a' shared message ids: the second
 * one's batch was answered as a duplicate of the first's and never stored.
 * A CR or LF would end the header line. Such ids (and those starting with
 * '~', the mark of the other form) go in as '~' + base64url: every producer
 * keeps message ids of its own. A real single-node JetStream, one store.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeBatches } from '../../protocol/batch.ts';
import { startNatsCluster, type NatsCluster } from '../../harness/nats.ts';
import { JetStreamLogStore } from '../../server/storage/jetstream/jetstream-log-store.ts';
import { makeBatch, valueText } from '../helpers/store.ts';

let nats: NatsCluster;
let store: JetStreamLogStore;

async function values(topic: string): Promise<string[]> {
  const r = await store.read(topic, 0, 0, 1 << 20);
  return decodeBatches(r.bytes, 0).map((rec) => valueText(rec) ?? '');
}

describe('producer ids in message ids', () => {
  beforeAll(async () => {
    nats = await startNatsCluster({ nodes: 1 });
    store = new JetStreamLogStore({ servers: nats.servers.split(','), refreshIntervalMs: 0 });
    await store.open();
  }, 30_000);
  afterAll(async () => {
    await store?.close();
    await nats?.stop();
  });

  it("producers 'a', ' a' and '~IGE' (base64url of ' a') each have their batch stored, and a retry of each is a duplicate", async () => {
    await store.createTopic('ids', 1, { replicas: 1 });
    const pids = ['a', ' a', '~IGE', '\ta'];
    const first = [];
    for (const [i, pid] of pids.entries()) first.push(await store.append('ids', 0, makeBatch({ producerId: pid, baseSequence: 0, count: 2, tag: `p${i}` })));
    expect(first.map((r) => [r.duplicate, r.baseOffset])).toEqual([
      [false, 0],
      [false, 2],
      [false, 4],
      [false, 6],
    ]);
    expect(await values('ids')).toEqual(['p0-0', 'p0-1', 'p1-0', 'p1-1', 'p2-0', 'p2-1', 'p3-0', 'p3-1']);
    for (const [i, pid] of pids.entries()) {
      expect(await store.append('ids', 0, makeBatch({ producerId: pid, baseSequence: 0, count: 2, tag: `p${i}` }))).toMatchObject({ duplicate: true, baseOffset: 2 * i });
    }
  }, 30_000);

  it('a producer id with CR and LF is appended, deduplicated, and the partition goes on', async () => {
    await store.createTopic('crlf', 1, { replicas: 1 });
    const pid = 'x\r\nNats-Expected-Last-Sequence: 0\r\n';
    const batch = (seq: number) => makeBatch({ producerId: pid, baseSequence: seq, count: 2, tag: `s${seq}` });
    expect(await store.append('crlf', 0, batch(0))).toMatchObject({ duplicate: false, baseOffset: 0 });
    expect(await store.append('crlf', 0, batch(2))).toMatchObject({ duplicate: false, baseOffset: 2 });
    expect(await store.append('crlf', 0, batch(0))).toMatchObject({ duplicate: true, baseOffset: 0 });
    expect(await store.append('crlf', 0, makeBatch({ count: 1, tag: 'plain' }))).toMatchObject({ duplicate: false, baseOffset: 4 });
    expect(store.lastSequence('crlf', 0, pid)).toBe(3);
    expect(await values('crlf')).toEqual(['s0-0', 's0-1', 's2-0', 's2-1', 'plain-0']);
  }, 30_000);
});
