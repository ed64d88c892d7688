/**
 * A browser tab as a consumer-group member beside a Node member: the hub
 * splits the partitions between them, every record goes to exactly one;
 * when the tab is closed (its socket goes without a leave), its partitions
 * move to the Node member after the session timeout, which continues from
 * the tab's last commit.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Hub } from '../../harness/hub.ts';
import { startBrowserEnv, until, type BrowserEnv } from '../../harness/browser.ts';
import { SESSION_TIMEOUT_MS, createTopic, groupView, member, produce, startGroupHub, type TestMember } from '../groups/support.ts';

let hub: Hub;
let env: BrowserEnv;
let node: TestMember | undefined;

beforeAll(async () => {
  [hub, env] = await Promise.all([startGroupHub(), startBrowserEnv()]);
});
afterAll(async () => {
  await node?.client.close();
  await env?.close();
  await hub?.stop();
  hub?.cleanup();
});

it('a tab shares a topic with a Node member; closing the tab hands its partitions over after the session timeout', async () => {
  await createTopic(hub.url, 'clicks', 4);
  const ctx = await env.context();
  const page = await env.open(ctx);
  await page.evaluate((url) => window.tb.start('tab', { url, name: 'tab-member', backoffInitialMs: 20, backoffMaxMs: 100 }), hub.wsUrl);
  await page.evaluate(() => window.tb.subscribe('tab', 'clicks', { group: 'clickers', from: 'earliest' }));
  node = member(hub.wsUrl, 'node-member', 'clicks', 'clickers');
  await until(async () => node!.sub.assignment().length === 2 && (await groupView(hub.url, 'clickers'))?.state === 'stable', 15_000, 'a 2/2 split');

  await produce(hub.wsUrl, 'clicks', 4, 0, 200);
  const tabSeen = async (): Promise<Array<[number, number, number]>> => page.evaluate(() => window.tb.received('tab'));
  await until(async () => (await tabSeen()).length + node!.seen.length === 200, 20_000, '200 records');
  const tab = await tabSeen();
  const tabParts = [...new Set(tab.map((r) => r[0]))].sort();
  expect(tabParts).toHaveLength(2);
  expect(tabParts.some((p) => node!.sub.assignment().includes(p))).toBe(false);
  expect(new Set([...tab.map((r) => r[2]), ...node.seen.map((r) => (r.value as { n: number }).n)]).size).toBe(200);
  await until(async () => (await groupView(hub.url, 'clickers'))!.offsets.every((o) => o.lag === 0), 10_000, 'commits');

  await ctx.close(); // the tab goes away without leaving
  const closedAt = Date.now();
  await produce(hub.wsUrl, 'clicks', 4, 200, 40);
  await until(() => node!.sub.assignment().length === 4, SESSION_TIMEOUT_MS + 10_000, 'the tab’s partitions to move');
  expect(Date.now() - closedAt).toBeGreaterThanOrEqual(SESSION_TIMEOUT_MS - 500);
  await until(() => node!.seen.length === 100 + 40, 15_000, 'the Node member to take over at the tab’s commit');
  expect(new Set(node.seen.map((r) => (r.value as { n: number }).n)).size).toBe(140);
});
