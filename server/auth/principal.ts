/**
 * Who is on the other end of a connection and what they may do, built once
 * from a verified token's claims and asked on every frame and route.
 *
 * Claims format (docs/security.md):
 *   {"sub": "...", "tributary": {"produce": ["orders", "sensors.*"],
 *    "consume": ["orders"], "groups": ["billing"], "admin": false}}
 *
 * Patterns, for topics and groups alike:
 *   `name`      exactly that name
 *   `prefix.*`  every name that starts with `prefix.` and has at least one
 *               character after the dot, at any depth (`prefix.a.b`), but
 *               not `prefix` itself
 *   `*`         every name
 * Anything else (a `*` elsewhere, a non-string, an over-long entry) grants
 * nothing; a malformed claim never throws, it just grants nothing. Names
 * follow protocol/limits' topic rule, for groups too (as the frame decoder
 * does). Parsing is protocol/topic-patterns.ts's, shared with the edge
 * worker's device-token patterns.
 */
import { LIMITS } from '../../protocol/limits.ts';
import { parseTopicPattern } from '../../protocol/topic-patterns.ts';

/** Most entries one permission list may hold; a longer list grants nothing at all. */
export const MAX_PATTERNS_PER_LIST = 256;
/** Longest pattern: a maximal topic name plus `.*`. */
const MAX_PATTERN_LENGTH = LIMITS.maxTopicNameLength + 2;
/** Longest `sub` the hub accepts (it keys per-subject connection counts and logs). */
export const MAX_SUBJECT_LENGTH = 1024;

export interface Principal {
  readonly subject: string;
  readonly anonymous: boolean;
  /** May use admin frames and routes (create/delete topics, …). Does not by itself grant produce or consume. */
  readonly admin: boolean;
  /** When the hub stops accepting the token (its `exp` plus the clock tolerance), or null if it has no `exp`. */
  readonly expiresAtMs: number | null;
  canProduce(topic: string): boolean;
  canConsume(topic: string): boolean;
  canJoin(group: string): boolean;
}

/** A compiled permission list: answers in O(1) for exact names and `*`, O(prefixes) otherwise. */
export class PatternSet {
  private readonly all: boolean;
  private readonly exact: ReadonlySet<string>;
  private readonly prefixes: readonly string[];
  /** Entries that were ignored, for diagnostics (never for decisions). */
  readonly ignored: number;

  private constructor(all: boolean, exact: Set<string>, prefixes: string[], ignored: number) {
    this.all = all;
    this.exact = exact;
    this.prefixes = prefixes;
    this.ignored = ignored;
  }

  static readonly EMPTY = new PatternSet(false, new Set(), [], 0);
  static readonly ALL = new PatternSet(true, new Set(), [], 0);

  /** Compile an untrusted claim value. Never throws. */
  static from(value: unknown): PatternSet {
    if (!Array.isArray(value)) return value === undefined ? PatternSet.EMPTY : new PatternSet(false, new Set(), [], 1);
    if (value.length > MAX_PATTERNS_PER_LIST) return new PatternSet(false, new Set(), [], value.length);
    let all = false;
    let ignored = 0;
    const exact = new Set<string>();
    const prefixes: string[] = [];
    for (const entry of value) {
      if (typeof entry !== 'string' || entry.length === 0 || entry.length > MAX_PATTERN_LENGTH) {
        ignored++;
      } else {
        const pattern = parseTopicPattern(entry);
        if (!pattern) ignored++;
        else if (pattern.kind === 'all') all = true;
        else if (pattern.kind === 'exact') exact.add(pattern.name);
        else if (!prefixes.includes(pattern.prefix)) prefixes.push(pattern.prefix);
      }
    }
    return new PatternSet(all, exact, prefixes, ignored);
  }

  matches(name: string): boolean {
    if (this.all) return true;
    if (this.exact.has(name)) return true;
    for (const prefix of this.prefixes) {
      if (name.length > prefix.length && name.startsWith(prefix)) return true;
    }
    return false;
  }

  /** A readable summary for logs and errors: the patterns, not the token. */
  describe(): string {
    if (this.all) return '*';
    return [...this.exact, ...this.prefixes.map((p) => `${p}*`)].join(', ') || '(none)';
  }
}

interface Permissions {
  produce: PatternSet;
  consume: PatternSet;
  groups: PatternSet;
  admin: boolean;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Read the `tributary` claim. Missing or malformed → no permissions. */
function permissionsFromClaims(claims: unknown): Permissions {
  const t = isPlainObject(claims) ? claims.tributary : undefined;
  if (!isPlainObject(t)) return { produce: PatternSet.EMPTY, consume: PatternSet.EMPTY, groups: PatternSet.EMPTY, admin: false };
  return {
    produce: PatternSet.from(t.produce),
    consume: PatternSet.from(t.consume),
    groups: PatternSet.from(t.groups),
    admin: t.admin === true,
  };
}

class TokenPrincipal implements Principal {
  readonly anonymous = false;
  readonly admin: boolean;
  constructor(
    readonly subject: string,
    readonly expiresAtMs: number | null,
    private readonly perms: Permissions,
  ) {
    this.admin = perms.admin;
  }
  canProduce(topic: string): boolean {
    return this.perms.produce.matches(topic);
  }
  canConsume(topic: string): boolean {
    return this.perms.consume.matches(topic);
  }
  canJoin(group: string): boolean {
    return this.perms.groups.matches(group);
  }
  toString(): string {
    return `Principal(${this.subject}; produce: ${this.perms.produce.describe()}; consume: ${this.perms.consume.describe()}; groups: ${this.perms.groups.describe()}${this.admin ? '; admin' : ''})`;
  }
}

/**
 * A principal for an authenticated subject with the permissions in `claims`
 * (a verified JWT payload). `expiresAtMs` is decided by the verifier.
 */
export function principalFromClaims(subject: string, claims: unknown, expiresAtMs: number | null): Principal {
  return new TokenPrincipal(subject, expiresAtMs, permissionsFromClaims(claims));
}

const ANONYMOUS: Principal = Object.freeze({
  subject: 'anonymous',
  anonymous: true,
  admin: true,
  expiresAtMs: null,
  canProduce: () => true,
  canConsume: () => true,
  canJoin: () => true,
});

/** Everyone, allowed everything: the principal of every connection when auth is off. */
export function anonymousPrincipal(): Principal {
  return ANONYMOUS;
}

/** The largest delay setTimeout honours (2^31 - 1 ms, about 24.8 days); longer ones fire at once. */
export const MAX_TIMER_DELAY_MS = 2 ** 31 - 1;

/**
 * Milliseconds from `nowMs` until the principal's token stops being accepted,
 * clamped to what setTimeout can hold (re-arm when it fires early), 0 if
 * already expired, null if it never expires.
 */
export function expiryDelayMs(principal: Principal, nowMs: number): number | null {
  if (principal.expiresAtMs === null) return null;
  return Math.min(MAX_TIMER_DELAY_MS, Math.max(0, principal.expiresAtMs - nowMs));
}
