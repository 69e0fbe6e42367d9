/**
 * SQL that txproxy sends in place of a client's statement.
 *
 * A refusal is sent to the server as a statement that fails with the same
 * SQLSTATE, so the server's state after it is exactly what a real refusal
 * leaves: an implicit transaction rolled back, an explicit block failed,
 * the rest of an extended batch skipped up to Sync. The client then gets
 * txproxy's own ErrorResponse (without the PL/pgSQL context line).
 */
import type { Report } from '../protocol/encode.js';

/** Does nothing and answers `DO`: stands in for a COMMIT that must not reach the server. */
export const NOOP_SQL = 'DO $txproxy$BEGIN END$txproxy$';

/** A refusal as the server will raise it; `message` is what the server's error will carry. */
export interface RefusalStatement {
  sql: string;
  code: string;
  message: string;
}

/**
 * `DO … RAISE EXCEPTION USING ERRCODE = …` carrying the report's fields.
 * Texts are dollar-quoted; `$` is dropped from them so no text can end a
 * quote early.
 */
export function refusalStatement(report: Report): RefusalStatement {
  const message = clean(report.message);
  // Our reports carry standard SQLSTATEs; anything else becomes raise_exception.
  const code = /^[0-9A-Z]{5}$/.test(report.code) ? report.code : 'P0001';
  const fields = [`ERRCODE = '${code}'`, `MESSAGE = ${quote(message)}`];
  if (report.detail) fields.push(`DETAIL = ${quote(clean(report.detail))}`);
  if (report.hint) fields.push(`HINT = ${quote(clean(report.hint))}`);
  return {
    sql: `DO $txproxy$BEGIN RAISE EXCEPTION USING ${fields.join(', ')}; END$txproxy$`,
    code,
    message,
  };
}

function clean(text: string): string {
  return text.replace(/\$/g, '');
}

function quote(text: string): string {
  return `$m$${text}$m$`;
}
