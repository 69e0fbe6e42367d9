/**
 * Judges one statement before it is sent: allowed, refused (with the error
 * the client gets) or let through with a warning. Pure: the caller says
 * where the transaction stands.
 */
import type { Report } from '../protocol/encode.js';
import type { StatementInfo } from '../sql/classify.js';
import { PolicyErrors } from './policy-errors.js';
import type { PolicyRule } from './policy-set.js';
import { transactionModesOf } from './single-transaction.js';
import type { TxStatus } from '../protocol/codes.js';

export interface StatementSituation {
  /** The status the client sees before this statement (forecast). */
  status: TxStatus;
  /** Statements the server's transaction already holds when this one runs. */
  statementsBefore: number;
  /** The client's open savepoints. */
  savepointDepth: number;
  /** single-transaction / dry-run: the request's transaction, if txproxy holds one. */
  wrapper?: {
    /** An earlier error rolled the request's transaction back. */
    failed: boolean;
    /** The modes it was opened with (`ISOLATION LEVEL …`), null for none. */
    modes: string | null;
  };
}

/** `refused` for what a mode forbids, `limit` for what a limit stops. */
export type DecisionKind = 'refused' | 'limit';

export type StatementVerdict =
  | { kind: 'allow' }
  | { kind: 'refuse'; decision: DecisionKind; report: Report }
  /** The rule's action is warn: the statement runs, the decision is recorded. */
  | { kind: 'warn'; decision: DecisionKind; report: Report };

export const ALLOW: StatementVerdict = { kind: 'allow' };

/** Statements that end or unwind a transaction are never held back by limits. */
const UNWINDING = new Set(['commit', 'rollback', 'rollback_to', 'release']);

export function decideStatement(rule: PolicyRule, info: StatementInfo, situation: StatementSituation): StatementVerdict {
  const wrapper = situation.wrapper;
  if (wrapper !== undefined) {
    // What the wrapping itself cannot allow, whatever the action says.
    const report = wrapperRefusal(rule, info, situation, wrapper);
    if (report !== null) return { kind: 'refuse', decision: 'refused', report };
  }
  // In a failed block the server refuses everything but ROLLBACK on its own.
  if (situation.status === 'E') return ALLOW;
  const mode = modeViolation(rule, info, situation);
  if (mode !== null) return violation(rule, 'refused', mode);
  const limit = limitViolation(rule, info, situation);
  if (limit !== null) return violation(rule, 'limit', limit);
  return ALLOW;
}

function violation(rule: PolicyRule, decision: DecisionKind, report: Report): StatementVerdict {
  return rule.action === 'enforce' ? { kind: 'refuse', decision, report } : { kind: 'warn', decision, report };
}

function modeViolation(rule: PolicyRule, info: StatementInfo, situation: StatementSituation): Report | null {
  switch (rule.mode) {
    case 'atomic':
      // VACUUM, CREATE INDEX CONCURRENTLY… cannot run in a block at all.
      if (situation.status !== 'I' || info.nonTransactional) return null;
      if (info.write) return PolicyErrors.writeOutsideTransaction(rule, info.operation);
      if (info.lockingRead) return PolicyErrors.lockingReadOutsideTransaction(rule, info.operation);
      return null;
    case 'read-only':
      if (info.write || info.lockingRead) return PolicyErrors.readOnly(rule, info.lockingRead && !info.write ? `${info.operation} FOR UPDATE/SHARE` : info.operation);
      return null;
    default:
      return null;
  }
}

function limitViolation(rule: PolicyRule, info: StatementInfo, situation: StatementSituation): Report | null {
  const { maxStatementsPerTransaction, maxSavepointDepth } = rule.limits;
  const control = info.txControl;
  if (control !== null && UNWINDING.has(control)) return null;
  if (maxStatementsPerTransaction !== null && situation.statementsBefore + 1 > maxStatementsPerTransaction) {
    return PolicyErrors.tooManyStatements(rule, maxStatementsPerTransaction);
  }
  if (maxSavepointDepth !== null && control === 'savepoint' && situation.savepointDepth + 1 > maxSavepointDepth) {
    return PolicyErrors.savepointTooDeep(rule, maxSavepointDepth);
  }
  return null;
}

function wrapperRefusal(
  rule: PolicyRule,
  info: StatementInfo,
  situation: StatementSituation,
  wrapper: NonNullable<StatementSituation['wrapper']>,
): Report | null {
  const control = info.txControl;
  if (wrapper.failed) {
    // COMMIT/ROLLBACK outside a block are harmless no-ops; everything else waits for the request's end.
    return control === 'commit' || control === 'rollback' ? null : PolicyErrors.requestFailed(rule);
  }
  if (control === 'prepare_transaction') return PolicyErrors.prepareTransaction(rule);
  if (info.nonTransactional) return PolicyErrors.nonTransactional(rule, info.operation);
  if (control === 'begin' && situation.status === 'I') {
    const modes = transactionModesOf(info);
    // The modes can only be those the request's transaction was opened with, before it ran anything.
    if (modes !== null && (situation.statementsBefore > 0 || modes !== wrapper.modes)) return PolicyErrors.transactionModes(rule);
  }
  return null;
}
