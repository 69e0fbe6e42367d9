/**
 * A simple-protocol Query on an enforced session. The Query is a request
 * boundary. Each of its statements is judged: a refused one is replaced by
 * a statement that fails on the server with the same SQLSTATE, and nothing
 * after it is sent (the server would skip it); under single-transaction
 * the client's transaction control becomes savepoint commands. The tracker
 * records the client's statements, a refusal standing for the statement it
 * replaces, and txproxy's own statements as what they are.
 */
import { refusalStatement } from '../policy/control-sql.js';
import { PASS, transactionModesOf, type ServerStatement } from '../policy/single-transaction.js';
import { Frontend } from '../protocol/codes.js';
import { decodeQuery } from '../protocol/decode.js';
import type { Verdict } from '../protocol/message-scanner.js';
import { splitStatements } from '../sql/classify.js';
import { extractSqlCommenter } from '../sql/sqlcommenter.js';
import { answerPlan, originOf, queryMessage, type AnswerPlan, type Outgoing, type PendingDecision, type StatementOrigin } from './control-messages.js';
import type { EnforcedSession } from './enforcer-ports.js';
import type { OutgoingRecorder } from './outgoing-recorder.js';
import type { RequestScope } from './request-scope.js';
import type { StatementJudge } from './statement-judge.js';

export class SimpleQueryEnforcer {
  constructor(
    private readonly session: EnforcedSession,
    private readonly scope: RequestScope,
    private readonly judge: StatementJudge,
    private readonly recorder: OutgoingRecorder,
  ) {}

  query(buf: Buffer, start: number, end: number): Verdict | 'default' {
    const tracker = this.session.tracker;
    const scope = this.scope;
    const scs = tracker.standardConformingStrings;
    const { text, tags } = extractSqlCommenter(decodeQuery(buf, start, end), scs);
    const statements = splitStatements(text, scs);
    const out: Outgoing[] = [];
    const rule = scope.enter(tags, out, 'simple', () => transactionModesOf(statements[0]));
    if (!rule.enforcing && scope.transaction === null) {
      for (const info of statements) scope.forecast.sent(info);
      scope.forecast.batchEnded();
      return this.recorder.pass(out, Frontend.Query, buf, start, end);
    }
    // What goes to the server, and what the tracker records (a refusal stands for the client's statement).
    const wire: string[] = [];
    const tracked: string[] = [];
    const origins: (StatementOrigin | null)[] = [];
    const steps: ServerStatement[] = [];
    const decisions: PendingDecision[] = [];
    let refusal: AnswerPlan['refusal'] = null;
    let changed = false;
    for (const info of statements) {
      const verdict = this.judge.judge(rule, info, decisions, tracked.length);
      if (verdict.kind === 'refuse') {
        refusal = { statement: refusalStatement(verdict.report), report: verdict.report };
        wire.push(refusal.statement.sql);
        tracked.push(info.text);
        origins.push(null);
        scope.forecast.refused();
        changed = true;
        break;
      }
      const control = this.judge.controlPlan(info);
      this.judge.sent(rule, info);
      if (control === null) {
        wire.push(info.text);
        tracked.push(info.text);
        origins.push(null);
        steps.push({ sql: info.text, answer: PASS });
        continue;
      }
      changed = true;
      for (const step of control) {
        wire.push(step.sql);
        tracked.push(step.sql);
        origins.push(originOf(step, info));
        steps.push(step);
      }
    }
    scope.forecast.batchEnded();
    if (refusal === null) this.judge.outcomeMark(tags);
    if (!changed) return this.recorder.pass(out, Frontend.Query, buf, start, end, decisions);
    const trackedSql = tracked.join(';\n');
    out.push({
      message: queryMessage(wire.join(';\n')),
      hidden: false,
      plan: answerPlan({ steps, refusal }),
      track: () => this.session.tracker.clientQuery(trackedSql),
      origins,
      decisions,
    });
    return this.recorder.emit(out);
  }
}
