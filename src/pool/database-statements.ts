/**
 * Statements that need a database nobody is connected to: `DROP DATABASE`,
 * `ALTER DATABASE … RENAME`, and `CREATE DATABASE … TEMPLATE t` (the
 * template). Idle pooled connections are txproxy's, not the application's,
 * so they must not make these fail with "database … is being accessed by
 * other users" (Django's test runner drops and creates its test database
 * this way). PostgreSQL waits up to 5 s for other backends to leave
 * (CountOtherDBBackends), so closing the idle connections as the statement
 * starts is enough.
 */
import { identifierValue, lex, TokenKind } from '../sql/lexer.js';
import type { SessionInfo, StatementRecord, TrackerListener } from '../tracker/types.js';

/** What the pools offer: close their idle connections to a database; returns how many. */
export interface IdleCloser {
  closeIdle(database: string): number;
}

const FREES_DATABASES = new Set(['DROP DATABASE', 'CREATE DATABASE', 'ALTER DATABASE']);

/** The databases a statement needs free of other sessions; empty for any other statement. */
export function databasesToFree(sql: string, operation: string): string[] {
  if (!FREES_DATABASES.has(operation)) return [];
  const words: string[] = [];
  lex(sql, (kind, start, end) => {
    if (kind === TokenKind.Word || kind === TokenKind.QuotedIdent) words.push(identifierValue(sql, kind, start, end));
    else if (kind === TokenKind.String) words.push(sql.slice(start + 1, end - 1));
  });
  // words: [drop|create|alter, database, …]
  const rest = words.slice(2);
  if (operation === 'DROP DATABASE') {
    const name = rest[0] === 'if' && rest[1] === 'exists' ? rest[2] : rest[0];
    return name === undefined ? [] : [name];
  }
  if (operation === 'ALTER DATABASE') return rest[1] === 'rename' && rest[0] !== undefined ? [rest[0]] : [];
  // TEMPLATE [=] name (the '=' is no word)
  const template = rest.indexOf('template');
  const name = template < 0 ? undefined : rest[template + 1];
  return name === undefined ? [] : [name];
}

/** A tracker listener that frees databases for the statements above as they start. */
export function databaseStatementListener(pools: IdleCloser): TrackerListener {
  return {
    statementStarted(_session: SessionInfo, statement: StatementRecord): void {
      // The operation first: most records' text is never made (statement-record.ts).
      if (!FREES_DATABASES.has(statement.info.operation)) return;
      for (const database of databasesToFree(statement.text, statement.info.operation)) pools.closeIdle(database);
    },
  };
}
