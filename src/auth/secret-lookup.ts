/**
 * Where a pooled client's stored secret comes from: the auth file first,
 * then (with `auth.user` set) PgBouncer's auth_query, run on the server as
 * auth.user over a connection of txproxy's own, its answers cached for
 * `auth.query_cache_ttl`.
 */
import type { UpstreamTarget } from '../upstream/target.js';
import { ServerLink } from '../server-link/server-link.js';
import type { AuthConfig } from './auth-config.js';
import { AuthQueryCache, type RunAuthQuery } from './auth-query.js';
import type { ServerCredentials } from './client-authenticator.js';
import type { Secret } from './userlist.js';
import { sqlLiteral } from '../sql/literal.js';

/** Users whose auth_query answers are cached at once. */
const AUTH_QUERY_CACHE_ENTRIES = 10_000;

export type SecretLookup = (user: string) => Promise<Secret | null>;

export function secretLookup(auth: AuthConfig, userlist: Map<string, Secret>, target: UpstreamTarget, timeoutMs: number): SecretLookup {
  if (auth.user === null) return async (user) => userlist.get(user) ?? null;
  const authUser = auth.user;
  // auth.user's own secret is read at each run: a reloaded auth file may have changed it.
  const cache = new AuthQueryCache(authQueryRunner(authUser, () => userlist.get(authUser) ?? null, target, timeoutMs), {
    query: auth.query,
    ttlMs: auth.query_cache_ttl,
    maxEntries: AUTH_QUERY_CACHE_ENTRIES,
  });
  return async (user) => userlist.get(user) ?? cache.lookup(user);
}

/**
 * Runs the auth query as `authUser` on a connection opened for the lookup
 * (the cache keeps lookups rare). The user name goes in as a quoted literal
 * in place of `$1`: control statements are simple queries.
 */
function authQueryRunner(authUser: string, secretOf: () => Secret | null, target: UpstreamTarget, timeoutMs: number): RunAuthQuery {
  return async (query, user) => {
    const credentials = credentialsOf(secretOf());
    const link = await ServerLink.open(target, { user: authUser, database: target.database ?? 'postgres' }, credentials, timeoutMs);
    try {
      const result = await link.run(query.replace(/\$1(?!\d)/g, sqlLiteral(user)));
      if (result.error !== null) throw new Error(`auth query failed: ${result.error.message} (${result.error.code})`);
      // The secret is the query's second column (PgBouncer: usename, passwd).
      return { rows: result.rows.map((row) => ({ passwd: row[1] ?? null })) };
    } finally {
      link.close();
    }
  };
}

/** How auth.user logs in to the server with its secret from the auth file: a SCRAM verifier cannot answer the server's challenge. */
function credentialsOf(secret: Secret | null): ServerCredentials {
  if (secret === null) return { kind: 'none' };
  if (secret.kind === 'plain') return { kind: 'password', password: secret.password };
  if (secret.kind === 'md5') return { kind: 'md5', hash: secret.hash };
  return { kind: 'none' };
}
