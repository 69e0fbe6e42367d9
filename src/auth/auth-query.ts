/**
 * PgBouncer's auth_user / auth_query: a user not in the auth file is looked
 * up on the server itself, by a query run as a configured user, and the
 * answer (the stored secret, or none) is cached for a bounded time so that a
 * login storm does not become a query storm, and a changed password is seen
 * again within that time.
 *
 * The query takes the user name as $1 and returns the name and the secret
 * (PgBouncer's default reads pg_shadow, which needs a superuser; a
 * SECURITY DEFINER function is the usual way for an unprivileged auth user).
 */
import { parseSecret, type Secret } from './userlist.js';

export const DEFAULT_AUTH_QUERY = 'SELECT usename, passwd FROM pg_shadow WHERE usename = $1';

/** Runs the auth query; the caller owns the connection (pg.Client or a pooled one). */
export type RunAuthQuery = (query: string, user: string) => Promise<{ rows: { passwd?: string | null; [column: string]: unknown }[] }>;

export interface AuthQueryOptions {
  query?: string;
  /** How long an answer (a secret, or "no such user") is reused. */
  ttlMs: number;
  /** Most users cached at once; the oldest answer goes first. */
  maxEntries: number;
  now?: () => number;
}

interface Entry {
  secret: Secret | null;
  expires: number;
}

export class AuthQueryCache {
  private readonly entries = new Map<string, Entry>();
  /** Lookups in flight, shared by logins of the same user that arrive together. */
  private readonly inFlight = new Map<string, Promise<Secret | null>>();
  private readonly now: () => number;

  constructor(
    private readonly run: RunAuthQuery,
    private readonly options: AuthQueryOptions,
  ) {
    this.now = options.now ?? Date.now;
  }

  /** The user's secret, null when the server knows no such user (or it has no password). */
  async lookup(user: string): Promise<Secret | null> {
    const cached = this.entries.get(user);
    if (cached !== undefined && cached.expires > this.now()) return cached.secret;
    const pending = this.inFlight.get(user);
    if (pending !== undefined) return pending;
    const lookup = this.query(user).finally(() => this.inFlight.delete(user));
    this.inFlight.set(user, lookup);
    return lookup;
  }

  /** Forgets a user's answer, e.g. after its login to the server failed with the cached secret. */
  forget(user: string): void {
    this.entries.delete(user);
  }

  get size(): number {
    return this.entries.size;
  }

  private async query(user: string): Promise<Secret | null> {
    const result = await this.run(this.options.query ?? DEFAULT_AUTH_QUERY, user);
    const stored = result.rows[0]?.passwd;
    const secret = typeof stored === 'string' && stored !== '' ? parseSecret(stored) : null;
    this.entries.delete(user);
    this.entries.set(user, { secret, expires: this.now() + this.options.ttlMs });
    // Maps iterate in insertion order: the first key is the oldest answer.
    while (this.entries.size > this.options.maxEntries) this.entries.delete(this.entries.keys().next().value!);
    return secret;
  }
}
