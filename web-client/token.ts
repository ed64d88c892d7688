/**
 * Tokens as the client handles them: a string or a function that returns a
 * fresh one. The client reads a JWT's `exp` and `sub` (without verifying:
 * the hub does that) to refresh before expiry and to bind the outbox to one
 * subject.
 */
export type TokenSource = string | (() => string | Promise<string>);

export interface TokenClaims {
  /** Expiry, ms since the epoch, when the token carries one. */
  expMs?: number;
  /** Subject; '' for anonymous connections and tokens without one. */
  sub: string;
}

function base64UrlDecode(s: string): string {
  const b64 = s.replace(/-/g, '+').replace(/_/g, '/') + '='.repeat((4 - (s.length % 4)) % 4);
  const bin = atob(b64);
  const bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  return new TextDecoder().decode(bytes);
}

/** Claims of a JWT-shaped token; opaque tokens yield { sub: '' } with no expiry. */
export function readTokenClaims(token: string | undefined): TokenClaims {
  if (!token) return { sub: '' };
  const parts = token.split('.');
  if (parts.length !== 3) return { sub: '' };
  try {
    const claims = JSON.parse(base64UrlDecode(parts[1])) as { exp?: unknown; sub?: unknown };
    const out: TokenClaims = { sub: typeof claims.sub === 'string' ? claims.sub : '' };
    if (typeof claims.exp === 'number' && Number.isFinite(claims.exp)) out.expMs = claims.exp * 1000;
    return out;
  } catch {
    return { sub: '' };
  }
}

export async function resolveToken(source: TokenSource | undefined): Promise<string | undefined> {
  if (source === undefined) return undefined;
  return typeof source === 'function' ? await source() : source;
}

/**
 * When to refresh a token that expires at `expMs`: 10% of its remaining life
 * before expiry, at least 5 s and at most 60 s early, but never earlier than
 * half its remaining life (a token of a few seconds would otherwise be
 * refreshed at once, again and again); never in the past, and never sooner
 * than `minMs` (a floor between refreshes, for a clock that runs ahead of the
 * token issuer's).
 */
export function refreshDelayMs(expMs: number, now: number, minMs = 0): number {
  const left = expMs - now;
  const margin = Math.min(60_000, Math.max(5_000, left * 0.1), left / 2);
  return Math.max(minMs, left - margin);
}
