/**
 * The set-up most test files repeat: one hub for the whole file, started
 * before its tests, and after them the clients the tests opened closed and
 * the hub stopped and its data dir removed.
 *
 *   const hub = useHub({ args: ['--max-connections', '4'] });
 *   const client = async () => hub.own(await WsClient.connect(hub.wsUrl));
 *
 * `hub` reads as a Hub inside tests and hooks (it forwards to the hub that
 * beforeAll started); read outside them, before the hub exists, it throws.
 * A file that replaces its hub mid-way (a restart) keeps its own `let hub`.
 * Uses Vitest's hooks, so bench/ does not import it.
 */
import { afterAll, beforeAll } from 'vitest';
import { startHub, type Hub, type HubOptions } from './hub.ts';

interface Closable {
  close(): unknown;
}

export interface HubFixture extends Hub {
  /** Keeps `c` to be closed after the file's tests, before the hub stops; returns `c`. */
  own<C extends Closable>(c: C): C;
  /** Closes (and forgets) every client owned so far, for a test that needs the hub without them. */
  closeOwned(): Promise<void>;
}

/** `opts` may be a function, for options that are only known once the file's other set-up has run. */
export function useHub(opts: HubOptions | (() => HubOptions | Promise<HubOptions>) = {}): HubFixture {
  let started: Hub | undefined;
  const owned: Closable[] = [];
  beforeAll(async () => {
    started = await startHub(typeof opts === 'function' ? await opts() : opts);
  });
  const closeOwned = async (): Promise<void> => {
    await Promise.all(owned.splice(0).map(async (c) => c.close()));
  };
  afterAll(async () => {
    await closeOwned();
    await started?.stop();
    started?.cleanup();
  });
  const own = <C extends Closable>(c: C): C => {
    owned.push(c);
    return c;
  };
  return new Proxy({} as HubFixture, {
    get(_target, key) {
      if (key === 'own') return own;
      if (key === 'closeOwned') return closeOwned;
      if (!started) throw new Error(`the file's hub is not started yet: read hub.${String(key)} inside a test or hook`);
      return started[key as keyof Hub];
    },
  });
}
