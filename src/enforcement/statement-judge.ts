/**
 * Decides on each client statement before it is sent, under its request's
 * rule and the forecast of where the statements sent before it leave the
 * session, and keeps that forecast going; under single-transaction, says
 * what the client's transaction control becomes.
 */
import type { PolicyRule } from '../policy/policy-set.js';
import { outcomeMarkOf } from '../policy/request-outcome.js';
import { planClientControl, type ServerStatement } from '../policy/single-transaction.js';
import { decideStatement, type StatementSituation, type StatementVerdict } from '../policy/statement-decision.js';
import type { StatementInfo } from '../sql/classify.js';
import type { SqlCommenterTags } from '../sql/sqlcommenter.js';
import type { PendingDecision } from './control-messages.js';
import type { RequestScope } from './request-scope.js';

export class StatementJudge {
  constructor(private readonly scope: RequestScope) {}

  /**
   * Decides on a statement. Anything but a plain allow goes into
   * `decisions`, for the statement tracked at `index` of the message sent:
   * it is recorded once that statement starts and has its transaction.
   */
  judge(rule: PolicyRule, info: StatementInfo, decisions: PendingDecision[], index: number): StatementVerdict {
    const verdict = decideStatement(rule, info, this.situation(rule));
    if (verdict.kind !== 'allow') {
      const decision = verdict.kind === 'warn' ? 'warned' : verdict.decision;
      const request = this.scope.request;
      const { code, message } = verdict.report;
      decisions.push({ index, event: { rule, decision, sqlstate: code, message, request, transactionId: null, statement: info.text } });
    }
    return verdict;
  }

  private situation(rule: PolicyRule): StatementSituation {
    const { transaction, forecast } = this.scope;
    return {
      status: forecast.status,
      statementsBefore: transaction !== null ? transaction.statements : forecast.statementsBefore(),
      savepointDepth: forecast.savepointDepth,
      wrapper: rule.wraps ? { failed: this.scope.binding?.failed ?? false, modes: transaction?.modes ?? null } : undefined,
    };
  }

  /** single-transaction: what the client's transaction control becomes; null: unchanged. */
  controlPlan(info: StatementInfo): ServerStatement[] | null {
    if (info.txControl === null || (this.scope.transaction === null && !(this.scope.binding?.failed ?? false))) return null;
    // The forecast follows the client's view: T or E inside its own block.
    const status = this.scope.forecast.status;
    return planClientControl(info, status !== 'I', status === 'E');
  }

  /** The statement goes to the server: the forecast moves past it, and its transaction is timed. */
  sent(rule: PolicyRule, info: StatementInfo): void {
    this.scope.forecast.sent(info);
    const transaction = this.scope.transaction;
    if (transaction !== null) transaction.statements++;
    this.scope.limits.armDuration(rule);
  }

  /** A statement of the request carried `txproxy_outcome`: how its clean end goes. */
  outcomeMark(tags: SqlCommenterTags | null): void {
    const mark = outcomeMarkOf(tags);
    const transaction = this.scope.transaction;
    if (mark !== null && transaction !== null) transaction.mark = mark;
  }
}
