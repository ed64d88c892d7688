/**
 * The setup of the browser tests that fail the network under a page: a hub,
 * a TCP proxy in front of it (the page connects through `proxy.wsUrl`) and a
 * browser env, started once per test file and stopped after it. Kept apart
 * from browser.ts, which the outbox bench imports outside Vitest.
 */
import { afterAll, beforeAll } from 'vitest';
import { type BrowserEnv, startBrowserEnv } from '../../harness/browser.ts';
import { startHub, type Hub } from '../../harness/hub.ts';
import { startTcpProxy, type TcpProxy } from '../../harness/tcp-proxy.ts';

/** What the file's tests use; a test that restarts the hub puts the new one in `hub` so that it is stopped at the end. */
export interface HubBehindProxy {
  hub: Hub;
  proxy: TcpProxy;
  env: BrowserEnv;
}

/** Registers beforeAll/afterAll for the file; the fields are set once beforeAll has run. */
export function useHubBehindProxy(): HubBehindProxy {
  const fx = {} as Partial<HubBehindProxy> as HubBehindProxy;
  beforeAll(async () => {
    [fx.hub, fx.env] = await Promise.all([startHub(), startBrowserEnv()]);
    fx.proxy = await startTcpProxy(fx.hub.port);
  });
  afterAll(async () => {
    await fx.env?.close();
    await fx.proxy?.close();
    await fx.hub?.stop();
    fx.hub?.cleanup();
  });
  return fx;
}
