/**
 * What trace records (and the admin API, which never shows more than the
 * trace) may hold of SQL text and of the server's error messages, per the
 * `trace.sql` setting:
 *
 * - `full`: SQL as sent, but for passwords (CREATE/ALTER ROLE … PASSWORD
 *   '…' and the like, see redact.ts), which no mode writes in clear; error
 *   messages as the server sent them, but for those of a statement that
 *   held a password.
 * - `redacted`: literals of SQL replaced by `?`, and the values that error
 *   messages quote (redact-message.ts).
 * - `off`: no SQL; error messages as in `redacted`.
 */
import type { StatementInfo } from '../sql/classify.js';
import { redactMessage } from '../sql/redact-message.js';
import { holdsSecret, maskSecrets, redactSql } from '../sql/redact.js';

export type SqlTraceMode = 'full' | 'redacted' | 'off';

export class TraceText {
  constructor(readonly mode: SqlTraceMode) {}

  /**
   * SQL text for a record, or undefined when SQL is not traced. `info` is
   * the tracker's reading of the text, when there is one: it tells the
   * string syntax the server read the text with, and spares the look for a
   * password in statements that cannot hold one.
   */
  sql(text: string, info?: StatementInfo): string | undefined {
    if (this.mode === 'off') return undefined;
    const masked = mayHoldSecret(info) ? maskSecrets(text) : text;
    return this.mode === 'redacted' ? redactSql(masked, info?.standardConformingStrings) : masked;
  }

  /**
   * A server error message for a record. `statementText` is the SQL that
   * failed, when known: a statement with a password may have it echoed
   * (`syntax error at or near "…"`), so its message is redacted in any mode.
   */
  errorMessage(message: string, statementText?: string): string {
    if (this.mode !== 'full') return redactMessage(message);
    return statementText !== undefined && holdsSecret(statementText) ? redactMessage(message) : message;
  }
}

/** Only CREATE and ALTER statements set passwords; without the tracker's reading, the text is looked at. */
function mayHoldSecret(info: StatementInfo | undefined): boolean {
  if (info === undefined) return true;
  const operation = info.operation;
  return operation.startsWith('CREATE') || operation.startsWith('ALTER');
}
