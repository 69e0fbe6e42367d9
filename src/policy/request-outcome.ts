/**
 * How a single-transaction request ends when it ends cleanly (Terminate, or
 * a new sqlcommenter trace id). The wire cannot tell a request that
 * succeeded from one whose application raised after its last statement and
 * then disconnected politely, so the rule says what an unmarked clean end
 * does (`on_clean_end`), and the application can say how the request went
 * with a sqlcommenter tag on any statement of the request:
 *
 *   SELECT 1 /*txproxy_outcome='commit'*\/
 *
 * The server runs the statement as it is (the comment is a comment to it);
 * txproxy reads the tag. The last mark of a request wins.
 */
import type { SqlCommenterTags } from '../sql/sqlcommenter.js';
import type { CleanEndOutcome } from './policy-config.js';

/** The sqlcommenter key an application marks a request's outcome with. */
export const OUTCOME_TAG = 'txproxy_outcome';

/** The outcome a statement's tags mark; null when they mark none (or an unknown value). */
export function outcomeMarkOf(tags: SqlCommenterTags | null): CleanEndOutcome | null {
  const value = tags?.[OUTCOME_TAG];
  return value === 'commit' || value === 'rollback' ? value : null;
}

/** Why a clean end commits or rolls back, for the policy record. */
export interface CleanEndDecision {
  commit: boolean;
  reason: string;
}

export function decideCleanEnd(onCleanEnd: CleanEndOutcome, mark: CleanEndOutcome | null): CleanEndDecision {
  if (mark !== null) return { commit: mark === 'commit', reason: `the request marked ${OUTCOME_TAG}='${mark}'` };
  return { commit: onCleanEnd === 'commit', reason: `the request ended cleanly without an outcome mark and on_clean_end is ${onCleanEnd}` };
}
