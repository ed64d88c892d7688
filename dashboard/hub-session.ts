/**
 * The dashboard's one way to the hub: the web client (subscriptions over
 * the WebSocket) and its HTTP admin (topics, groups, reads), both on the
 * page's own origin and both carrying the token the user signed in with
 * (kept in sessionStorage: gone when the tab closes). No private API.
 */
import { createAdmin, createClient, webSocketUrlOf, type Admin, type Client } from '../web-client/index.ts';

const TOKEN_KEY = 'tributary.dashboard.token';

export class HubSession {
  readonly admin: Admin;
  private client?: Client;

  constructor(readonly baseUrl: string) {
    // The token is read per request, so signing in needs no new admin; no token, no Authorization header.
    this.admin = createAdmin({
      url: baseUrl,
      fetch: (input, init) => {
        const token = this.token;
        if (token === undefined) return fetch(input, init);
        return fetch(input, { ...init, headers: { ...(init?.headers as Record<string, string>), authorization: `Bearer ${token}` } });
      },
    });
  }

  get token(): string | undefined {
    return sessionStorage.getItem(TOKEN_KEY) ?? undefined;
  }

  signIn(token: string): void {
    sessionStorage.setItem(TOKEN_KEY, token.trim());
  }

  signOut(): void {
    sessionStorage.removeItem(TOKEN_KEY);
  }

  /** One WebSocket client for the page's subscriptions; a memory outbox, as the dashboard never produces. */
  wsClient(): Client {
    if (!this.client) {
      const token = this.token;
      this.client = createClient({ url: webSocketUrlOf(this.baseUrl), outbox: 'memory', name: 'dashboard', ...(token === undefined ? {} : { token }) });
    }
    return this.client;
  }
}
