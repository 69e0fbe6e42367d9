/**
 * The server's answers on an enforced session, after the tracker matched
 * them. Answers to txproxy's own messages are dropped; the others are
 * rewritten to what the client expects of what it sent: the policy's
 * ErrorResponse for a refusal, the client's tags for its rewritten
 * transaction control, and ReadyForQuery idle while only the request's
 * transaction is open. The answers also drive the request transaction
 * (opened, doomed, ended) and the idle timer.
 */
import { Backend, type TxStatus } from '../protocol/codes.js';
import { decodeCommandComplete, decodeErrorFields, decodeReadyForQuery } from '../protocol/decode.js';
import { commandComplete, errorResponse, noticeResponse, readyForQuery } from '../protocol/encode.js';
import { DROP, FORWARD, type Verdict } from '../protocol/message-scanner.js';
import type { Entry } from '../tracker/session-tracker.js';
import type { StatementRecord } from '../tracker/types.js';
import type { EnforcedSession } from './enforcer-ports.js';
import type { OutgoingRecorder } from './outgoing-recorder.js';
import type { PendingDecisions } from './pending-decisions.js';
import type { RequestScope } from './request-scope.js';
import type { SqlError } from './request-transaction.js';

export class ServerAnswers {
  constructor(
    private readonly session: EnforcedSession,
    private readonly scope: RequestScope,
    private readonly recorder: OutgoingRecorder,
    private readonly pending: PendingDecisions,
  ) {}

  answer(type: number, buf: Buffer, start: number, end: number, entry: Entry | null): Verdict {
    if (this.pending.size > 0) this.pending.recordStarted(false);
    if (entry === null) return FORWARD;
    const verdict: Verdict = entry.hidden ? DROP : FORWARD;
    switch (type) {
      case Backend.CommandComplete:
        return this.complete(entry, decodeCommandComplete(buf, start, end), verdict);
      case Backend.ErrorResponse:
        return this.error(entry, buf, start, end, verdict);
      case Backend.ReadyForQuery:
        return this.ready(decodeReadyForQuery(buf, start), verdict);
    }
    return verdict;
  }

  private complete(entry: Entry, tag: string, verdict: Verdict): Verdict {
    const scope = this.scope;
    const plan = this.recorder.planOf(entry);
    const step = plan !== undefined ? plan.steps[plan.cursor++] : undefined;
    if (step?.clientBlock !== undefined) scope.clientBlock = step.clientBlock;
    const statement = completedStatement(entry);
    const changes = scope.transaction?.changes ?? null;
    if (changes !== null && statement !== undefined) {
      const info = statement.info;
      if (info.savepoint !== null && (info.txControl === 'savepoint' || info.txControl === 'release' || info.txControl === 'rollback_to')) {
        changes.savepoint(info.txControl === 'savepoint' ? 'create' : info.txControl, info.savepoint);
      } else if (!entry.hidden) {
        changes.completed(tag, statement.text, statement.copy === 'in');
      }
    }
    if (plan?.control) scope.controlAnswered(plan.control, statement, tag, null);
    if (verdict === DROP || step === undefined) return verdict;
    if (step.answer.kind === 'drop') return DROP;
    if (step.answer.kind === 'retag') {
      const complete = commandComplete(step.answer.tag);
      return step.answer.notice !== null ? Buffer.concat([noticeResponse(step.answer.notice), complete]) : complete;
    }
    return verdict;
  }

  private error(entry: Entry, buf: Buffer, start: number, end: number, verdict: Verdict): Verdict {
    const scope = this.scope;
    const plan = this.recorder.planOf(entry);
    const transaction = scope.transaction;
    if (plan === undefined && transaction === null) return verdict;
    const fields = decodeErrorFields(buf, start, end);
    const error: SqlError = { code: fields.code, message: fields.message };
    if (plan?.control) scope.controlAnswered(plan.control, undefined, null, error);
    // An error outside the client's own block dooms the request's transaction.
    if (transaction !== null && !entry.hidden && !scope.clientBlock) transaction.fail(error);
    const refusal = plan?.refusal;
    if (refusal && fields.code === refusal.statement.code && fields.message === refusal.statement.message) return errorResponse(refusal.report);
    return verdict;
  }

  private ready(status: TxStatus, verdict: Verdict): Verdict {
    const scope = this.scope;
    // The client sees its own status: idle while only txproxy's transaction is open.
    const shown = scope.transaction !== null && !scope.clientBlock && status !== 'I' ? 'I' : status;
    if (scope.transaction?.failed) this.abortTransaction();
    if (this.session.tracker.pending === 0) {
      scope.resync(status);
      if (status === 'I') scope.limits.timers.clearDuration();
      else scope.limits.armIdle(scope.binding?.rule);
    }
    if (verdict === DROP) return DROP;
    return shown === status ? verdict : readyForQuery(shown);
  }

  /** Rolls a doomed request transaction back now, rather than holding its locks until the request ends. */
  private abortTransaction(): void {
    const transaction = this.scope.transaction!;
    const out = transaction.abort();
    // Only between client messages; otherwise the request's end rolls it back.
    if (!this.session.sendToServer(Buffer.concat(out.map((o) => o.message)))) return;
    this.recorder.emit(out);
    this.scope.aborted(transaction);
  }
}

/**
 * The statement a CommandComplete just completed: a Query's entry has
 * already moved past it, the other entries hold exactly one.
 */
function completedStatement(entry: Entry): StatementRecord | undefined {
  return entry.statements[Math.max(entry.index - 1, 0)];
}
