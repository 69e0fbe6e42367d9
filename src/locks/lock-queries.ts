/**
 * The sampler's queries and the rows they return. Both are cheap reads of
 * shared memory, but not free, and run only for statements past the
 * threshold:
 *
 * - `activity` reads pg_stat_activity for the backends running those
 *   statements: which of them wait for a heavyweight lock.
 * - `waits` runs only for backends seen waiting. pg_blocking_pids() and
 *   pg_locks each take every lock-manager partition lock (briefly stalling
 *   lock acquisition server-wide), so pg_locks is read once per sample and
 *   pg_blocking_pids() called only for pids that wait.
 *
 * Times come back as epoch milliseconds (float8) to keep the server's
 * microseconds and avoid time-zone parsing; backend_start as text, only
 * ever compared with itself.
 */

export const ACTIVITY_SQL = `SELECT pid,
       backend_start::text AS backend_start,
       coalesce(wait_event_type = 'Lock', false) AS lock_wait,
       (extract(epoch FROM clock_timestamp()) * 1000)::float8 AS server_ms
  FROM pg_stat_activity
 WHERE pid = ANY($1::int[])`;

export interface ActivityRow {
  pid: number;
  backend_start: string;
  lock_wait: boolean;
  server_ms: number;
}

/**
 * `waitstart` (when the backend began to wait) exists since PostgreSQL 14;
 * before that the monitor estimates the start from its own samples.
 */
export function waitsSql(serverVersionNum: number): string {
  const waitstart = serverVersionNum >= 140000 ? 'waitstart' : 'NULL::timestamptz AS waitstart';
  // A row lock (FOR UPDATE, UPDATE) held by another transaction is waited
  // for as a ShareLock on that transaction id, which names no table; the
  // waiter then holds the row's tuple lock, and that one does.
  return `WITH waiting AS MATERIALIZED (
  SELECT w.pid, pg_blocking_pids(w.pid) AS blocking
    FROM unnest($1::int[]) AS w(pid)
), locks AS MATERIALIZED (
  SELECT pid, locktype, mode, granted, database, relation, ${waitstart}
    FROM pg_locks
   WHERE pid = ANY($1::int[]) AND (NOT granted OR locktype = 'tuple')
)
SELECT w.pid,
       w.blocking,
       l.locktype,
       l.mode,
       (extract(epoch FROM l.waitstart) * 1000)::float8 AS waitstart_ms,
       (SELECT format('%I.%I', n.nspname, c.relname)
          FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE c.oid = coalesce(l.relation, t.relation)
           AND coalesce(l.database, t.database) = (SELECT oid FROM pg_database WHERE datname = current_database())) AS relation,
       (SELECT coalesce(json_agg(json_build_object(
                 'pid', a.pid, 'backend_start', a.backend_start::text, 'application_name', a.application_name,
                 'state', a.state, 'query', a.query)), '[]'::json)
          FROM pg_stat_activity a
         WHERE a.pid = ANY(w.blocking)) AS blockers
  FROM waiting w
  JOIN locks l ON l.pid = w.pid AND NOT l.granted
  LEFT JOIN locks t ON t.pid = w.pid AND t.granted AND t.locktype = 'tuple'`;
}

export interface WaitRow {
  pid: number;
  blocking: number[];
  locktype: string;
  mode: string;
  /** Null for an instant after the wait began, and before PostgreSQL 14. */
  waitstart_ms: number | null;
  /** schema.table, when the lock names a relation of the database the monitor is connected to. */
  relation: string | null;
  blockers: BlockerActivity[];
}

export interface BlockerActivity {
  pid: number;
  backend_start: string | null;
  application_name: string | null;
  state: string | null;
  query: string | null;
}

export const VERSION_SQL = `SELECT current_setting('server_version_num')::int AS version`;
