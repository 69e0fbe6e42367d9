/**
 * One query that reads, from the server itself, the session state that
 * ties a client to its backend and the settings the session changed: what
 * txproxy runs (outside a transaction) when a statement may have changed
 * either, rather than trusting its reading of the statements.
 *
 * Each part, as PostgreSQL 15+ answers it:
 * - LISTEN: pg_listening_channels() (UNLISTEN * and DISCARD ALL empty it);
 * - session advisory locks: pg_locks rows of this backend with locktype
 *   'advisory' (transaction-level ones are gone outside a transaction);
 * - temporary objects: tables, views, sequences, functions and types in the
 *   backend's own temporary schema (the schema stays after DISCARD TEMP, empty);
 * - WITH HOLD cursors: pg_cursors.is_holdable (protocol portals never outlive
 *   their transaction);
 * - SQL PREPARE: pg_prepared_statements.from_sql (protocol-level statements
 *   say false: txproxy carries those itself);
 * - SET ROLE: current_user differs from session_user; SET SESSION
 *   AUTHORIZATION changes session_user too, so that is compared with the
 *   user the link logged in as (role and session_authorization are not in
 *   pg_settings);
 * - settings: pg_settings of source 'session' — SET, SET SESSION and
 *   set_config(…, false) (startup parameters say 'client', ALTER ROLE /
 *   DATABASE … SET say 'user' / 'database' / 'database user', the same for
 *   every link of a pool).
 */
import { sqlLiteral } from '../sql/literal.js';
import type { ControlResult } from '../server-link/server-link.js';
import type { PinReason } from './session-effects.js';

export interface ProbedState {
  /** Reasons the server holds state for this session. */
  pins: Set<PinReason>;
  /** Settings the session changed (source 'session'): name → value as current_setting shows it. */
  settings: Map<string, string>;
}

/** The probe for a link logged in as `loginUser`; it must run outside a transaction. */
export function sessionProbeSql(loginUser: string): string {
  const temp = (catalog: string, column: string): string => `(SELECT count(*) FROM pg_catalog.${catalog} WHERE ${column} = pg_catalog.pg_my_temp_schema())`;
  return [
    'SELECT (SELECT count(*) FROM pg_catalog.pg_listening_channels())',
    "(SELECT count(*) FROM pg_catalog.pg_locks WHERE locktype = 'advisory' AND pid = pg_catalog.pg_backend_pid())",
    `${temp('pg_class', 'relnamespace')} + ${temp('pg_proc', 'pronamespace')} + ${temp('pg_type', 'typnamespace')}`,
    '(SELECT count(*) FROM pg_catalog.pg_cursors WHERE is_holdable)',
    '(SELECT count(*) FROM pg_catalog.pg_prepared_statements WHERE from_sql)',
    `current_user <> session_user OR session_user <> ${sqlLiteral(loginUser)}`,
    "(SELECT pg_catalog.json_object_agg(name, pg_catalog.current_setting(name)) FROM pg_catalog.pg_settings WHERE source = 'session')",
  ].join(', ');
}

const COUNTED: PinReason[] = ['listen', 'advisory_lock', 'temp_table', 'hold_cursor', 'sql_prepare'];

/** Reads the probe's answer; throws when it is not one (an error, or a link inside a transaction). */
export function parseSessionProbe(result: ControlResult): ProbedState {
  if (result.error !== null) throw new Error(`session probe failed: ${result.error.message}`);
  if (result.status !== 'I' || result.rows.length !== 1 || result.rows[0].length !== 7) throw new Error('session probe: unexpected answer');
  const row = result.rows[0];
  const pins = new Set<PinReason>();
  COUNTED.forEach((reason, i) => {
    if (Number(row[i]) > 0) pins.add(reason);
  });
  if (row[5] === 't') pins.add('role');
  const settings = new Map<string, string>(row[6] === null ? [] : Object.entries(JSON.parse(row[6]) as Record<string, string>));
  return { pins, settings };
}

/** Runs the probe on a link (anything with ServerLink's `run`). */
export async function probeSession(link: { run(sql: string): Promise<ControlResult> }, loginUser: string): Promise<ProbedState> {
  return parseSessionProbe(await link.run(sessionProbeSql(loginUser)));
}
