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

const NO_PERMISSIONS: Permissions = Object.freeze({ produce: PatternSet.EMPTY, consume: PatternSet.EMPTY, groups: PatternSet.EMPTY, admin: false });

/** Read the `tributary` claim. Missing or malformed → no permissions. */
function permissionsFromClaims(claims: unknown): Permissions {
  const t = isPlainObject(claims) ? claims.tributary : undefined;
  if (!isPlainObject(t)) return NO_PERMISSIONS;
  return Object.freeze({
    produce: PatternSet.from(t.produce),
    consume: PatternSet.from(t.consume),
    groups: PatternSet.from(t.groups),
    admin: t.admin === true,
  });
}

/** Distinct `tributary` claims (and distinct subject + expiry + claims) kept compiled for reuse. */
export const SHARED_PRINCIPALS_MAX = 1024;
/** A claim (or subject + expiry + claim) longer than this as JSON is not shared: each cache holds at most SHARED_PRINCIPALS_MAX × this many characters of keys. */
const SHARED_CLAIM_MAX_CHARS = 2048;

/**
 * A map that forgets its least recently used entry past `max`: the
 * connections of a fleet mostly carry a few permission sets (every device
 * of a kind has the same claim), so one compiled copy serves them all and
 * a flood of distinct claims costs at most `max` entries.
 */
class RecentlyUsed<V> {
  private readonly entries = new Map<string, V>();
  constructor(private readonly max: number) {}

  get(key: string): V | undefined {
    const v = this.entries.get(key);
    if (v !== undefined) {
      // Map keeps insertion order: re-inserting marks it the most recent.
      this.entries.delete(key);
      this.entries.set(key, v);
    }
    return v;
  }

  set(key: string, v: V): void {
    if (this.entries.size >= this.max) this.entries.delete(this.entries.keys().next().value!);
    this.entries.set(key, v);
  }
}

const sharedPermissions = new RecentlyUsed<Permissions>(SHARED_PRINCIPALS_MAX);
const sharedPrincipals = new RecentlyUsed<Principal>(SHARED_PRINCIPALS_MAX);

/** The `tributary` claim as JSON, the key its compiled form is shared under; null when it is not to be shared. */
function claimKey(claims: unknown): string | null {
  const t = isPlainObject(claims) ? claims.tributary : undefined;
  if (!isPlainObject(t)) return '';
  let key: string;
  try {
    // A verified payload is parsed JSON, so equal JSON means equal claims (a different key order only misses the cache).
    key = JSON.stringify(t);
  } catch {
    return null;
  }
  return key.length <= SHARED_CLAIM_MAX_CHARS ? key : null;
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
 * Principals are immutable, so connections whose tokens carry the same
 * subject, expiry and claims share one, and those with the same claims
 * share the compiled permissions: per connection that is a reference
 * instead of about 600 bytes of sets and patterns.
 */
export function principalFromClaims(subject: string, claims: unknown, expiresAtMs: number | null): Principal {
  const key = claimKey(claims);
  if (key === null) return Object.freeze(new TokenPrincipal(subject, expiresAtMs, permissionsFromClaims(claims)));
  // The subject is at most MAX_SUBJECT_LENGTH characters; JSON.stringify quotes it, so no subject can forge another's key.
  const principalKey = `${JSON.stringify(subject)} ${expiresAtMs} ${key}`;
  const shareable = principalKey.length <= SHARED_CLAIM_MAX_CHARS;
  const known = shareable ? sharedPrincipals.get(principalKey) : undefined;
  if (known) return known;
  let perms = sharedPermissions.get(key);
  if (!perms) {
    perms = permissionsFromClaims(claims);
    sharedPermissions.set(key, perms);
  }
  const principal = Object.freeze(new TokenPrincipal(subject, expiresAtMs, perms));
  if (shareable) sharedPrincipals.set(principalKey, principal);
  return principal;
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
