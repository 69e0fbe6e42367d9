/**
 * The extended protocol on an enforced session. Only the first message of
 * a batch (after a Sync) can be a request boundary, since nothing of the
 * batch has reached the server yet there. Only Execute runs a statement, so
 * only Execute is judged: a refused one is replaced by txproxy's own
 * statement that fails with the same SQLSTATE, and the server then skips
 * the rest of the batch to Sync, as do we. Control statements go through
 * a prepared statement and portal of txproxy's own (control-messages.ts).
 */
import { refusalStatement } from '../policy/control-sql.js';
import { transactionModesOf } from '../policy/single-transaction.js';
import { Frontend } from '../protocol/codes.js';
import { decodeBind, decodeExecute, decodeParse } from '../protocol/decode.js';
import type { Verdict } from '../protocol/message-scanner.js';
import { classifyStatement, type StatementInfo } from '../sql/classify.js';
import { extractSqlCommenter, type SqlCommenterTags } from '../sql/sqlcommenter.js';
import { answerPlan, controlSequence, originOf, type Outgoing, type PendingDecision } from './control-messages.js';
import type { EnforcedSession } from './enforcer-ports.js';
import type { OutgoingRecorder } from './outgoing-recorder.js';
import type { RequestScope } from './request-scope.js';
import type { StatementJudge } from './statement-judge.js';

export class ExtendedBatchEnforcer {
  /** A message of the current extended batch was sent (no Sync since). */
  private batchOpen = false;
  /** A statement of this batch was refused: the server skips the rest up to Sync. */
  private skippingBatch = false;

  constructor(
    private readonly session: EnforcedSession,
    private readonly scope: RequestScope,
    private readonly judge: StatementJudge,
    private readonly recorder: OutgoingRecorder,
  ) {}

  /** Enforcing starts mid-session (a reload): a batch may be half sent, so no control batch before its Sync. */
  resume(): void {
    this.batchOpen = this.session.tracker.pending > 0;
  }

  /** Sync: the batch is over. */
  sync(): void {
    this.batchOpen = false;
    this.skippingBatch = false;
    this.scope.forecast.batchEnded();
  }

  /** Parse, Bind, Describe, Close or Execute. */
  message(type: number, buf: Buffer, start: number, end: number): Verdict | 'default' {
    const out: Outgoing[] = [];
    if (!this.batchOpen) {
      // The first message of a batch: the place for request boundaries,
      // since nothing of the batch has reached the server yet.
      this.batchOpen = true;
      const opening = this.statementOpening(type, buf, start, end);
      this.scope.enter(opening?.tags ?? null, out, 'batch', () => (opening !== null ? transactionModesOf(opening.info()) : null));
    }
    if (type !== Frontend.Execute || this.skippingBatch) return this.recorder.pass(out, type, buf, start, end);
    return this.execute(out, buf, start, end);
  }

  /** The statement an extended message refers to, for its sqlcommenter tags. */
  private statementOpening(type: number, buf: Buffer, start: number, end: number): { tags: SqlCommenterTags | null; info: () => StatementInfo } | null {
    const tracker = this.session.tracker;
    if (type === Frontend.Parse) {
      const scs = tracker.standardConformingStrings;
      const { text, tags } = extractSqlCommenter(decodeParse(buf, start, end).sql, scs);
      return { tags, info: () => classifyStatement(text, scs) };
    }
    const known =
      type === Frontend.Bind
        ? tracker.preparedStatement(decodeBind(buf, start, end).statement)
        : type === Frontend.Execute
          ? tracker.portalStatement(decodeExecute(buf, start, end).portal)
          : null;
    return known && { tags: known.tags, info: () => known.info };
  }

  private execute(out: Outgoing[], buf: Buffer, start: number, end: number): Verdict | 'default' {
    const scope = this.scope;
    const recorder = this.recorder;
    const prepared = this.session.tracker.portalStatement(decodeExecute(buf, start, end).portal);
    // Requests change only at a batch's start; mid-batch a request transaction may still have to open.
    const rule = scope.binding?.rule ?? scope.enter(prepared?.tags ?? null, out, 'mid', () => null);
    if (scope.mustOpenTransaction(rule)) scope.openTransaction(out, 'mid', null);
    if (prepared === null) return recorder.pass(out, Frontend.Execute, buf, start, end);
    const info = prepared.info;
    if (!rule.enforcing && scope.transaction === null) {
      scope.forecast.sent(info);
      return recorder.pass(out, Frontend.Execute, buf, start, end);
    }
    const decisions: PendingDecision[] = [];
    const verdict = this.judge.judge(rule, info, decisions, 0);
    if (verdict.kind === 'refuse') {
      const statement = refusalStatement(verdict.report);
      const sequence = controlSequence(statement.sql);
      for (const message of sequence.prepare) out.push({ message, hidden: true, plan: null });
      // The server runs the refusal; the tracker records the client's statement, which it answers for.
      out.push({
        message: sequence.execute,
        hidden: false,
        plan: answerPlan({ refusal: { statement, report: verdict.report } }),
        track: () => this.session.tracker.onClientMessage(Frontend.Execute, buf, start, end),
        decisions,
      });
      scope.forecast.refused();
      this.skippingBatch = true;
      return recorder.emit(out);
    }
    const control = this.judge.controlPlan(info);
    this.judge.sent(rule, info);
    this.judge.outcomeMark(prepared.tags);
    if (control === null) return recorder.pass(out, Frontend.Execute, buf, start, end, decisions);
    for (const [i, step] of control.entries()) {
      const sequence = controlSequence(step.sql);
      for (const message of sequence.prepare) out.push({ message, hidden: true, plan: null });
      out.push({
        message: sequence.execute,
        hidden: step.answer.kind === 'drop',
        plan: answerPlan({ steps: [step] }),
        origins: [originOf(step, info)],
        decisions: i === 0 ? decisions : undefined,
      });
      for (const message of sequence.cleanup) out.push({ message, hidden: true, plan: null });
    }
    return recorder.emit(out);
  }
}
