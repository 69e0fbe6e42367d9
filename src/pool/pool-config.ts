/**
 * The `pool:` section of the configuration (docs/pooling.md): PgBouncer's
 * settings under PgBouncer's names, with per-database and per-user
 * overrides, and how one pool's settings are worked out from them.
 */
import { z } from 'zod';
import { durationSchema } from '../config/duration.js';

function wholeNumber(min: number) {
  const expected = `expected a whole number of at least ${min}`;
  return z.number({ error: expected }).int({ error: expected }).min(min, { error: expected });
}


const duration = durationSchema;

const positiveDuration = duration.refine((ms) => ms > 0, { error: 'must be longer than 0' });
const sql = z.string({ error: 'expected SQL text, or an empty string for none' });

/** The settings each pool has, under the names they have in an override. */
const perPoolShape = {
  /** PgBouncer's per-database and per-user pool_mode. */
  pool_mode: z.enum(['session', 'transaction'], { error: 'expected one of session, transaction' }),
  pool_size: wholeNumber(1),
  min_pool_size: wholeNumber(0),
  reserve_pool_size: wholeNumber(0),
  reserve_pool_timeout: duration,
  server_idle_timeout: duration,
  server_lifetime: duration,
  server_connect_timeout: positiveDuration,
  server_login_retry: duration,
  query_wait_timeout: duration,
  server_reset_query: sql,
  server_check_query: sql,
  server_check_delay: duration,
};

const databaseOverride = z.object({ ...perPoolShape, max_db_connections: wholeNumber(0) }).partial().strict();
const userOverride = z.object({ ...perPoolShape, max_user_connections: wholeNumber(0) }).partial().strict();

/** Keys allowed under `pool.databases.<name>` and `pool.users.<name>`, for error messages. */
export const DATABASE_OVERRIDE_KEYS = Object.keys(databaseOverride.shape);
export const USER_OVERRIDE_KEYS = Object.keys(userOverride.shape);

export const poolSchema = z
  .object({
    /**
     * `none`: each client session has its own server connection, authentication relayed.
     * `session`: txproxy logs clients in and lends each a pooled server connection for its session.
     * `transaction`: as `session`, but the server goes back to the pool after each transaction
     *   whenever the client holds no state on it (docs/pooling.md).
     * `auto`: `session` with the embedded PostgreSQL (txproxy knows its password), `none` otherwise.
     */
    mode: z.enum(['auto', 'none', 'session', 'transaction'], { error: 'expected one of auto, none, session, transaction' }).default('auto'),
    /**
     * Transaction mode: protocol-level prepared statements kept per server
     * connection (PgBouncer's max_prepared_statements), least recently used
     * closed first.
     */
    max_prepared_statements: wholeNumber(1).default(200),
    /**
     * Transaction mode, a statement that leaves state on its server (SET ROLE,
     * LISTEN, a temporary table…): `pin` keeps the client on that server until
     * the state is gone, `warn` does the same and logs it, `refuse` refuses the
     * statement (0A000).
     */
    session_state: z.enum(['pin', 'warn', 'refuse'], { error: 'expected one of pin, warn, refuse' }).default('pin'),
    default_pool_size: wholeNumber(1).default(20),
    min_pool_size: wholeNumber(0).default(0),
    reserve_pool_size: wholeNumber(0).default(0),
    reserve_pool_timeout: duration.default(5_000),
    /** Server connections of one database, all users together; 0: no limit. */
    max_db_connections: wholeNumber(0).default(0),
    /** Server connections of one user, all databases together; 0: no limit. */
    max_user_connections: wholeNumber(0).default(0),
    server_idle_timeout: duration.default(600_000),
    server_lifetime: duration.default(3_600_000),
    server_connect_timeout: positiveDuration.default(15_000),
    server_login_retry: duration.default(15_000),
    query_wait_timeout: duration.default(120_000),
    server_reset_query: sql.default('DISCARD ALL'),
    server_check_query: sql.default('select 1'),
    server_check_delay: duration.default(30_000),
    databases: z.record(z.string(), databaseOverride, { error: 'expected a mapping of database names to settings' }).default({}),
    users: z.record(z.string(), userOverride, { error: 'expected a mapping of user names to settings' }).default({}),
  })
  .strict();

export type PoolConfig = z.output<typeof poolSchema>;
export type PoolConfigInput = z.input<typeof poolSchema>;

/** The configuration with every default, as `pool:` absent gives it. */
export function defaultPoolConfig(overrides: PoolConfigInput = {}): PoolConfig {
  return poolSchema.parse(overrides);
}

/** What `pool.mode` means for this upstream: `auto` pools only the embedded PostgreSQL, whose password txproxy knows. */
export function poolMode(configured: PoolConfig['mode'], embedded: boolean): 'none' | PoolMode {
  if (configured === 'auto') return embedded ? 'session' : 'none';
  return configured;
}

/** How a link comes back: session mode resets it, transaction mode hands it on as it is. */
export type PoolMode = 'session' | 'transaction';

/** One pool's settings, durations in milliseconds. */
export interface PoolSettings {
  mode: PoolMode;
  pool_size: number;
  min_pool_size: number;
  reserve_pool_size: number;
  reserve_pool_timeout: number;
  server_idle_timeout: number;
  server_lifetime: number;
  server_connect_timeout: number;
  server_login_retry: number;
  query_wait_timeout: number;
  server_reset_query: string;
  server_check_query: string;
  server_check_delay: number;
}

const PER_POOL_KEYS = (Object.keys(perPoolShape) as (keyof typeof perPoolShape)[]).filter((key) => key !== 'pool_mode');

/**
 * The settings of the pool of (`database`, `user`): the user's override
 * wins over the database's, which wins over the top-level value (as
 * PgBouncer's per-user pool_size wins over the database's). `mode` is the
 * pooling mode in force, which `pool_mode` overrides.
 */
export function poolSettingsFor(config: PoolConfig, database: string, user: string, mode: PoolMode = 'session'): PoolSettings {
  const base: PoolSettings = {
    mode,
    pool_size: config.default_pool_size,
    min_pool_size: config.min_pool_size,
    reserve_pool_size: config.reserve_pool_size,
    reserve_pool_timeout: config.reserve_pool_timeout,
    server_idle_timeout: config.server_idle_timeout,
    server_lifetime: config.server_lifetime,
    server_connect_timeout: config.server_connect_timeout,
    server_login_retry: config.server_login_retry,
    query_wait_timeout: config.query_wait_timeout,
    server_reset_query: config.server_reset_query,
    server_check_query: config.server_check_query,
    server_check_delay: config.server_check_delay,
  };
  for (const override of [config.databases[database], config.users[user]]) {
    if (override === undefined) continue;
    if (override.pool_mode !== undefined) base.mode = override.pool_mode;
    for (const key of PER_POOL_KEYS) {
      const value = override[key];
      if (value !== undefined) (base as unknown as Record<string, unknown>)[key] = value;
    }
  }
  return base;
}

/** `max_db_connections` of a database: its override, else the top-level value; 0 is no limit. */
export function maxDbConnections(config: PoolConfig, database: string): number {
  return config.databases[database]?.max_db_connections ?? config.max_db_connections;
}

/** `max_user_connections` of a user: its override, else the top-level value; 0 is no limit. */
export function maxUserConnections(config: PoolConfig, user: string): number {
  return config.users[user]?.max_user_connections ?? config.max_user_connections;
}

/**
 * The keys of `pool:` that differ between `current` and `next` and that a
 * reload cannot change: a session is set up at login for its pool's mode
 * (and, in transaction mode, for the prepared statement cache and the
 * session-state rule), so these take a restart. Empty: the reload may apply.
 */
export function restartOnlyChanges(current: PoolConfig, next: PoolConfig): string[] {
  const changed: string[] = [];
  for (const key of ['mode', 'max_prepared_statements', 'session_state'] as const) {
    if (current[key] !== next[key]) changed.push(`pool.${key}`);
  }
  for (const section of ['databases', 'users'] as const) {
    const names = new Set([...Object.keys(current[section]), ...Object.keys(next[section])]);
    for (const name of names) {
      if (current[section][name]?.pool_mode !== next[section][name]?.pool_mode) changed.push(`pool.${section}.${name}.pool_mode`);
    }
  }
  return changed;
}
