/**
 * Enforces the policies on one session, as its SessionInterceptor. The
 * decisions come from src/policy (pure); this folder turns them into bytes:
 *
 * - A refused statement never reaches the server. In its place goes a
 *   statement that fails there with the same SQLSTATE, so the server ends
 *   up exactly where a real refusal leaves it (implicit transaction rolled
 *   back, explicit block failed, rest of the batch skipped to Sync, later
 *   batches running); the client gets the policy's own ErrorResponse.
 *   (simple-query-enforcer.ts, extended-batch-enforcer.ts)
 * - single-transaction / dry-run: a transaction of txproxy's own is opened
 *   before the request's first statement and ended at its end; the client's
 *   BEGIN/COMMIT/ROLLBACK become savepoint commands, and tags and
 *   ReadyForQuery status are rewritten to what the client expects.
 *   (request-scope.ts, request-transaction.ts, server-answers.ts)
 * - Limits: statement count and savepoint depth are checked per statement
 *   (statement-judge.ts), idle time and transaction duration by timers
 *   (transaction-limits.ts).
 *
 * Messages txproxy adds are recorded in the tracker like the client's, so
 * the tracker keeps matching answers in order; their answers are marked
 * hidden and dropped (outgoing-recorder.ts). With no enforcing rule for the
 * session, the message hooks are not even installed: the session's hot
 * path is as without policies.
 */
import { orphanWritesMessage } from '../policy/policy-errors.js';
import { Frontend } from '../protocol/codes.js';
import type { Verdict } from '../protocol/message-scanner.js';
import type { SessionInterceptor } from '../proxy/session.js';
import { classifyStatement } from '../sql/classify.js';
import type { Entry } from '../tracker/session-tracker.js';
import type { StatementRecord, TransactionRecord } from '../tracker/types.js';
import type { EnforcedSession, PolicyReporter } from './enforcer-ports.js';
import { ExtendedBatchEnforcer } from './extended-batch-enforcer.js';
import { DEFAULT, OutgoingRecorder } from './outgoing-recorder.js';
import { PendingDecisions } from './pending-decisions.js';
import type { TransactionTimers } from './policy-timers.js';
import { RequestScope } from './request-scope.js';
import { ServerAnswers } from './server-answers.js';
import { SimpleQueryEnforcer } from './simple-query-enforcer.js';
import { StatementJudge } from './statement-judge.js';

export class PolicyEnforcer implements SessionInterceptor {
  /** Installed only while the session needs enforcing (see updateHooks). */
  onClientMessage: SessionInterceptor['onClientMessage'] = undefined;
  onServerMessage: SessionInterceptor['onServerMessage'] = undefined;

  private readonly scope: RequestScope;
  private readonly timers: TransactionTimers;
  /** Decisions on statements not started yet: recorded with their transaction once they start. */
  private readonly pending = new PendingDecisions((event) => this.reporter.decision(this.session.info, event));
  private readonly recorder: OutgoingRecorder;
  private readonly simple: SimpleQueryEnforcer;
  private readonly extended: ExtendedBatchEnforcer;
  private readonly answers: ServerAnswers;
  private orphans = { requestId: '', writes: 0 };

  private readonly clientHook = (type: number, buf: Buffer, start: number, end: number): Verdict | 'default' =>
    this.clientMessage(type, buf, start, end);
  private readonly serverHook = (type: number, buf: Buffer, start: number, end: number, entry: Entry | null): Verdict =>
    this.answers.answer(type, buf, start, end, entry);

  constructor(
    private readonly session: EnforcedSession,
    private readonly reporter: PolicyReporter,
  ) {
    const scope = new RequestScope(session, reporter, () => this.updateHooks());
    const judge = new StatementJudge(scope);
    const recorder = new OutgoingRecorder(session, this.pending);
    this.scope = scope;
    this.recorder = recorder;
    this.timers = scope.limits.timers;
    this.simple = new SimpleQueryEnforcer(session, scope, judge, recorder);
    this.extended = new ExtendedBatchEnforcer(session, scope, judge, recorder);
    this.answers = new ServerAnswers(session, scope, recorder, this.pending);
    this.updateHooks();
  }

  /** The policies were reloaded: the current request keeps its rule, the next one gets the new ones. */
  refresh(): void {
    this.scope.reload();
    this.updateHooks();
  }

  /** SET application_name: the rules this session can match change with it, from now on. */
  onApplicationName(): void {
    this.scope.applicationNameChanged();
    this.updateHooks();
  }

  private updateHooks(): void {
    const needed = this.scope.needsEnforcer;
    if (needed === (this.onClientMessage !== undefined)) return;
    if (needed) {
      // Turned on mid-session (a reload): start from the server's word.
      const tracker = this.session.tracker;
      this.scope.forecast.resync(tracker.currentStatus, tracker.savepointNames);
      this.extended.resume();
      this.onClientMessage = this.clientHook;
      this.onServerMessage = this.serverHook;
    } else {
      this.onClientMessage = undefined;
      this.onServerMessage = undefined;
      this.timers.clear();
    }
  }

  private clientMessage(type: number, buf: Buffer, start: number, end: number): Verdict | 'default' {
    this.timers.clearIdle();
    switch (type) {
      case Frontend.Query:
        return this.simple.query(buf, start, end);
      case Frontend.Sync:
        this.extended.sync();
        return DEFAULT;
      case Frontend.Parse:
      case Frontend.Bind:
      case Frontend.Describe:
      case Frontend.Close:
      case Frontend.Execute:
        return this.extended.message(type, buf, start, end);
    }
    return DEFAULT;
  }

  // ------------------------------------------------------------ session events

  /** Terminate: a request's transaction commits (dry-run: rolls back) before the server sees it. */
  onTerminate(): Buffer | undefined {
    this.timers.clearIdle();
    if (this.scope.transaction === null) return undefined;
    return this.recorder.emit(this.scope.finishTransaction('simple'));
  }

  onEnd(clean: boolean): void {
    this.timers.clear();
    this.pending.recordStarted(true);
    this.scope.abandon(clean);
    this.reporter.detach(this.session.info);
  }

  /**
   * The tracker ended a transaction: if it is a request transaction, its
   * outcome is recorded now, ahead of the transaction's own record.
   * autocommit: warns when one request commits writes in two or more
   * separate implicit transactions.
   */
  transactionEnded(tx: TransactionRecord): void {
    this.scope.transactionEnded(tx);
    if (tx.outcome !== 'commit' || !tx.implicit || tx.writes === 0) return;
    // CREATE DATABASE, VACUUM … cannot run in a transaction block: no request could have made them atomic.
    if (tx.statementLog.length > 0 && tx.statementLog.every(cannotRunInBlock)) return;
    const request = tx.request;
    const rule = this.scope.ruleOf(request);
    if (rule.mode !== 'autocommit') return;
    if (this.orphans.requestId !== request.id) this.orphans = { requestId: request.id, writes: 0 };
    if (++this.orphans.writes !== 2) return;
    this.scope.outcomes.decision(rule, 'warned', null, orphanWritesMessage(request.id, this.orphans.writes), request, tx.id);
  }
}

/** Data changes are the usual writes: those are read again only when they may be VACUUM, CREATE DATABASE… */
const DATA_CHANGE = /^(?:INSERT|UPDATE|DELETE|MERGE|COPY|SELECT|WITH|TRUNCATE)\b/;

function cannotRunInBlock(statement: StatementRecord): boolean {
  return !DATA_CHANGE.test(statement.info.operation) && classifyStatement(statement.text).nonTransactional;
}
