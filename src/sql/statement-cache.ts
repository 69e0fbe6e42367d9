/**
 * Remembers how recent SQL texts split and classify. Drivers send the same
 * texts over and over (BEGIN and COMMIT, the unnamed Parse of every
 * extended-protocol query, health checks), and a lookup costs a fraction of
 * lexing the text again. The results are shared: treat them as read-only.
 */
import { lastSplitHadLiterals, splitStatements, type StatementInfo } from './classify.js';

const LIMIT = 1024;
/** Texts longer than this are rarely repeated verbatim; not worth the memory. */
const MAX_TEXT = 4096;

const cache = new Map<string, readonly StatementInfo[]>();

export function splitStatementsCached(sql: string): readonly StatementInfo[] {
  const hit = cache.get(sql);
  if (hit !== undefined) return hit;
  const statements = splitStatements(sql);
  // A text with literals in it (`WHERE id = 42`) is rarely sent twice:
  // remembering it would only churn the cache.
  if (sql.length <= MAX_TEXT && !lastSplitHadLiterals()) {
    // Starting over when full costs less per query than evicting one by one.
    if (cache.size >= LIMIT) cache.clear();
    cache.set(sql, statements);
  }
  return statements;
}

/** One statement, e.g. an extended-protocol Parse (the server takes only one). */
export function classifyStatementCached(sql: string): StatementInfo {
  const all = splitStatementsCached(sql);
  return all.length === 1 ? all[0] : { ...all[0], text: sql.trim() };
}
