/**
 * Label values of bounded cardinality. Whatever a client can make up (SQL
 * keywords, routes, custom SQLSTATEs) is folded into `other` unless it is in
 * a fixed or configured set, so a client cannot grow the number of series.
 */

/** Operations (`db.operation.name`, see src/sql/classify.ts) that keep their own `command` label. */
const COMMANDS = [
  'SELECT',
  'INSERT',
  'UPDATE',
  'DELETE',
  'MERGE',
  'COPY',
  'VALUES',
  'TABLE',
  'WITH',
  'BEGIN',
  'START TRANSACTION',
  'COMMIT',
  'ROLLBACK',
  'SAVEPOINT',
  'RELEASE SAVEPOINT',
  'ROLLBACK TO SAVEPOINT',
  'PREPARE TRANSACTION',
  'COMMIT PREPARED',
  'ROLLBACK PREPARED',
  'CALL',
  'DO',
  'EXPLAIN',
  'SET',
  'SHOW',
  'RESET',
  'LOCK TABLE',
  'TRUNCATE',
  'VACUUM',
  'ANALYZE',
  'LISTEN',
  'NOTIFY',
  'UNLISTEN',
  'DECLARE',
  'FETCH',
  'MOVE',
  'CLOSE',
  'PREPARE',
  'EXECUTE',
  'DEALLOCATE',
  'DISCARD',
  'CHECKPOINT',
  'CREATE',
  'ALTER',
  'DROP',
  'GRANT',
  'REVOKE',
  'COMMENT',
  'REINDEX',
  'CLUSTER',
  'REFRESH',
] as const;

const COMMAND_SET: ReadonlyMap<string, string> = new Map(COMMANDS.map((c) => [c, c]));

/** `CREATE TABLE`, `DROP INDEX`, …: schema changes are counted by their verb alone. */
const SCHEMA_VERBS: ReadonlyMap<string, string> = new Map(['CREATE', 'ALTER', 'DROP'].map((c) => [c, c]));

/** Every value the `command` label can take. */
export const COMMAND_LABELS: readonly string[] = [...COMMANDS, 'other'];

/** The `command` label of an operation: itself when in the fixed set, its verb for schema changes, else `other`. */
export function commandLabel(operation: string): string {
  const known = COMMAND_SET.get(operation);
  if (known !== undefined) return known;
  const space = operation.indexOf(' ');
  if (space > 0) {
    const verb = SCHEMA_VERBS.get(operation.slice(0, space));
    if (verb !== undefined) return verb;
  }
  return 'other';
}

/** Label for statements that carry no route tag. */
export const NO_ROUTE = 'none';
/** Label for every route not in the allow-list. */
export const OTHER = 'other';

/**
 * The `route` label: a sqlcommenter `route` named in `metrics.routes` keeps
 * its value, an untagged request is `none`, any other route is `other`.
 */
export class RouteLabels {
  private readonly allowed: ReadonlySet<string>;

  constructor(routes: readonly string[]) {
    this.allowed = new Set(routes);
  }

  label(route: string | null): string {
    if (route === null) return NO_ROUTE;
    return this.allowed.has(route) ? route : OTHER;
  }
}

/**
 * How many distinct SQLSTATEs get their own series per database. PostgreSQL
 * defines about 250; PL/pgSQL's `RAISE … USING ERRCODE` can invent any five
 * characters, so the set is capped.
 */
export const SQLSTATE_LIMIT = 300;

const SQLSTATE_PATTERN = /^[0-9A-Z]{5}$/;

/** Whether a new `sqlstate` label value may be added to a family that already has `count` of them. */
export function acceptsSqlstate(code: string, count: number): boolean {
  return count < SQLSTATE_LIMIT && SQLSTATE_PATTERN.test(code);
}
