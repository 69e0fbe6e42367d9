/**
 * Enforces the policies on one session, as its SessionInterceptor. The
 * decisions come from src/policy (pure); this module turns them into bytes:
 *
 * - A refused statement never reaches the server. In its place goes a
 *   statement that fails there with the same SQLSTATE, so the server ends
 *   up exactly where a real refusal leaves it (implicit transaction rolled
 *   back, explicit block failed, rest of the batch skipped to Sync, later
 *   batches running); the client gets the policy's own ErrorResponse.
 * - single-transaction / dry-run: a transaction of txproxy's own is opened
 *   before the request's first statement and ended at its end; the client's
 *   BEGIN/COMMIT/ROLLBACK become savepoint commands, and tags and
 *   ReadyForQuery status are rewritten to what the client expects.
 * - Limits: statement count and savepoint depth are checked per statement,
 *   idle time and transaction duration by timers.
 *
 * Messages txproxy adds are recorded in the tracker like the client's, so
 * the tracker keeps matching answers in order; their answers are marked
 * hidden and dropped. With no enforcing rule for the session, the message
 * hooks are not even installed: the session's hot path is as without
 * policies.
 */
import { Backend, Frontend, type TxStatus } from '../protocol/codes.js';
import { decodeBind, decodeCommandComplete, decodeErrorFields, decodeExecute, decodeParse, decodeQuery, decodeReadyForQuery } from '../protocol/decode.js';
import { commandComplete, errorResponse, noticeResponse, readyForQuery, type Report } from '../protocol/encode.js';
import { DROP, FORWARD, type Verdict } from '../protocol/message-scanner.js';
import { refusalStatement } from '../policy/control-sql.js';
import type { DryRunChanges } from '../policy/dry-run-changes.js';
import type { MatchContext } from '../policy/matchers.js';
import { orphanWritesMessage, PolicyErrors } from '../policy/policy-errors.js';
import type { PolicyRule, PolicySet, SessionPolicies } from '../policy/policy-set.js';
import { CLIENT_BLOCK_SAVEPOINT, PASS, planClientControl, transactionModesOf, type ServerStatement } from '../policy/single-transaction.js';
import { decideStatement, type StatementSituation, type StatementVerdict } from '../policy/statement-decision.js';
import { TransactionForecast } from '../policy/transaction-forecast.js';
import { outcomeMarkOf } from '../policy/request-outcome.js';
import { classifyStatement, splitStatements, type StatementInfo } from '../sql/classify.js';
import { extractSqlCommenter, type SqlCommenterTags } from '../sql/sqlcommenter.js';
import type { Entry, SessionTracker } from '../tracker/session-tracker.js';
import type { RequestInfo, SessionInfo, StatementRecord, StatementSummary, TransactionRecord } from '../tracker/types.js';
import { answerPlan, controlSequence, markOrigins, originOf, queryMessage, type AnswerPlan, type Form, type Outgoing, type PendingDecision, type StatementOrigin } from './control-messages.js';
import { PendingDecisions } from './pending-decisions.js';
import { TransactionTimers } from './policy-timers.js';
import { RequestTransaction, type Binding, type OutcomeSink, type PolicyDecision, type SqlError } from './request-transaction.js';
import type { SessionInterceptor } from '../proxy/session.js';

/** What the enforcer needs of its session (src/proxy/session.ts). */
export interface EnforcedSession {
  readonly info: SessionInfo;
  readonly tracker: SessionTracker;
  close(report: Report | null): void;
  sendToServer(bytes: Buffer): boolean;
}

export type { PolicyDecision } from './request-transaction.js';

export interface DecisionEvent {
  rule: PolicyRule;
  decision: PolicyDecision;
  sqlstate: string | null;
  message: string;
  request: RequestInfo;
  transactionId: string | null;
  /** The statement decided on, when there is one. */
  statement?: string;
}

export interface DryRunEvent {
  request: RequestInfo;
  changes: DryRunChanges;
  error: SqlError | null;
}

/** Where decisions go (the PolicyService: trace records, metrics). */
export interface PolicyReporter {
  current(): PolicySet;
  decision(session: SessionInfo, event: DecisionEvent): void;
  dryRun(session: SessionInfo, event: DryRunEvent): void;
  detach(session: SessionInfo): void;
}

const DEFAULT = 'default';

export class PolicyEnforcer implements SessionInterceptor {
  /** Installed only while the session needs enforcing (see updateHooks). */
  onClientMessage: SessionInterceptor['onClientMessage'] = undefined;
  onServerMessage: SessionInterceptor['onServerMessage'] = undefined;

  private policies: SessionPolicies;
  private binding: Binding | null = null;
  /** single-transaction / dry-run: the transaction txproxy holds around the request. */
  private transaction: RequestTransaction | null = null;
  /** The client is inside its own block, as the answers so far say. */
  private clientBlock = false;
  private readonly forecast = new TransactionForecast();
  /** A message of the current extended batch was sent (no Sync since). */
  private batchOpen = false;
  /** A statement of this batch was refused: the server skips the rest up to Sync. */
  private skippingBatch = false;
  private readonly plans = new WeakMap<Entry, AnswerPlan>();
  /** Decisions on statements not started yet: recorded with their transaction once they start. */
  private readonly pending = new PendingDecisions((event) => this.reporter.decision(this.session.info, event));
  /** Request transactions whose end was sent, until the tracker sees it. */
  private closing: RequestTransaction[] = [];
  private readonly timers = new TransactionTimers();
  private orphans = { requestId: '', writes: 0 };
  private readonly outcomes: OutcomeSink = {
    decision: (rule, decision, sqlstate, message, request, transactionId) =>
      this.reporter.decision(this.session.info, { rule, decision, sqlstate, message, request, transactionId }),
    dryRun: (request, changes, error) => this.reporter.dryRun(this.session.info, { request, changes, error }),
  };

  private readonly clientHook = (type: number, buf: Buffer, start: number, end: number): Verdict | 'default' =>
    this.clientMessage(type, buf, start, end);
  private readonly serverHook = (type: number, buf: Buffer, start: number, end: number, entry: Entry | null): Verdict =>
    this.serverMessage(type, buf, start, end, entry);

  constructor(
    private readonly session: EnforcedSession,
    private readonly reporter: PolicyReporter,
  ) {
    this.policies = reporter.current().forSession(this.matchContext(null));
    this.updateHooks();
  }

  private get tracker(): SessionTracker {
    return this.session.tracker;
  }

  /** The policies were reloaded: the current request keeps its rule, the next one gets the new ones. */
  refresh(): void {
    if (this.binding === null) {
      // A session without hooks has not resolved its request yet: do it under the rules it started with.
      const request = this.tracker.request;
      this.binding = { request, rule: this.policies.resolve(this.matchContext(request)), policies: this.policies, failed: false };
    }
    this.policies = this.reporter.current().forSession(this.matchContext(null));
    this.updateHooks();
  }

  /** SET application_name: the rules this session can match change with it, from now on. */
  onApplicationName(): void {
    this.policies = this.reporter.current().forSession(this.matchContext(null));
    const binding = this.binding;
    if (binding !== null && this.transaction === null && this.forecast.status === 'I') {
      binding.policies = binding.policies.set.forSession(this.matchContext(null));
      binding.rule = binding.policies.resolve(this.matchContext(binding.request));
    }
    this.updateHooks();
  }

  private updateHooks(): void {
    const binding = this.binding;
    const needed = this.policies.enforcing || this.transaction !== null || (binding !== null && (binding.rule.enforcing || binding.failed));
    if (needed === (this.onClientMessage !== undefined)) return;
    if (needed) {
      // Turned on mid-session (a reload): start from the server's word; an
      // extended batch may be half sent, so no control batch before a Sync.
      this.forecast.resync(this.tracker.currentStatus, this.tracker.savepointNames);
      this.batchOpen = this.tracker.pending > 0;
      this.onClientMessage = this.clientHook;
      this.onServerMessage = this.serverHook;
    } else {
      this.onClientMessage = undefined;
      this.onServerMessage = undefined;
      this.timers.clear();
    }
  }

  // ------------------------------------------------------------ client messages

  private clientMessage(type: number, buf: Buffer, start: number, end: number): Verdict | 'default' {
    this.timers.clearIdle();
    switch (type) {
      case Frontend.Query:
        return this.onQuery(buf, start, end);
      case Frontend.Sync:
        this.batchOpen = false;
        this.skippingBatch = false;
        this.forecast.batchEnded();
        return DEFAULT;
      case Frontend.Parse:
      case Frontend.Bind:
      case Frontend.Describe:
      case Frontend.Close:
      case Frontend.Execute:
        return this.onExtended(type, buf, start, end);
    }
    return DEFAULT;
  }

  private onQuery(buf: Buffer, start: number, end: number): Verdict | 'default' {
    const scs = this.tracker.standardConformingStrings;
    const { text, tags } = extractSqlCommenter(decodeQuery(buf, start, end), scs);
    const statements = splitStatements(text, scs);
    const out: Outgoing[] = [];
    const rule = this.enterRequest(tags, out, 'simple', () => transactionModesOf(statements[0]));
    if (!rule.enforcing && this.transaction === null) {
      for (const info of statements) this.forecast.sent(info);
      this.forecast.batchEnded();
      return this.pass(out, Frontend.Query, buf, start, end);
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
      const verdict = this.judge(rule, info, decisions, tracked.length);
      if (verdict.kind === 'refuse') {
        refusal = { statement: refusalStatement(verdict.report), report: verdict.report };
        wire.push(refusal.statement.sql);
        tracked.push(info.text);
        origins.push(null);
        this.forecast.refused();
        changed = true;
        break;
      }
      const control = this.controlPlan(info);
      this.noteSent(rule, info);
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
    this.forecast.batchEnded();
    if (refusal === null) this.noteOutcomeMark(tags);
    if (!changed) return this.pass(out, Frontend.Query, buf, start, end, decisions);
    const trackedSql = tracked.join(';\n');
    out.push({
      message: queryMessage(wire.join(';\n')),
      hidden: false,
      plan: answerPlan({ steps, refusal }),
      track: () => this.tracker.clientQuery(trackedSql),
      origins,
      decisions,
    });
    return this.emit(out);
  }

  private onExtended(type: number, buf: Buffer, start: number, end: number): Verdict | 'default' {
    const out: Outgoing[] = [];
    if (!this.batchOpen) {
      // The first message of a batch: the place for request boundaries,
      // since nothing of the batch has reached the server yet.
      this.batchOpen = true;
      const opening = this.statementOpening(type, buf, start, end);
      this.enterRequest(opening?.tags ?? null, out, 'batch', () => (opening !== null ? transactionModesOf(opening.info()) : null));
    }
    if (type !== Frontend.Execute || this.skippingBatch) return this.pass(out, type, buf, start, end);
    return this.onExecute(out, buf, start, end);
  }

  /** The statement an extended message refers to, for its sqlcommenter tags. */
  private statementOpening(type: number, buf: Buffer, start: number, end: number): { tags: SqlCommenterTags | null; info: () => StatementInfo } | null {
    if (type === Frontend.Parse) {
      const scs = this.tracker.standardConformingStrings;
      const { text, tags } = extractSqlCommenter(decodeParse(buf, start, end).sql, scs);
      return { tags, info: () => classifyStatement(text, scs) };
    }
    const known =
      type === Frontend.Bind
        ? this.tracker.preparedStatement(decodeBind(buf, start, end).statement)
        : type === Frontend.Execute
          ? this.tracker.portalStatement(decodeExecute(buf, start, end).portal)
          : null;
    return known && { tags: known.tags, info: () => known.info };
  }

  private onExecute(out: Outgoing[], buf: Buffer, start: number, end: number): Verdict | 'default' {
    const prepared = this.tracker.portalStatement(decodeExecute(buf, start, end).portal);
    // Requests change only at a batch's start; mid-batch a request transaction may still have to open.
    const rule = this.binding?.rule ?? this.enterRequest(prepared?.tags ?? null, out, 'mid', () => null);
    if (this.mustOpenTransaction(rule)) this.openTransaction(out, 'mid', null);
    if (prepared === null) return this.pass(out, Frontend.Execute, buf, start, end);
    const info = prepared.info;
    if (!rule.enforcing && this.transaction === null) {
      this.forecast.sent(info);
      return this.pass(out, Frontend.Execute, buf, start, end);
    }
    const decisions: PendingDecision[] = [];
    const verdict = this.judge(rule, info, decisions, 0);
    if (verdict.kind === 'refuse') {
      const statement = refusalStatement(verdict.report);
      const sequence = controlSequence(statement.sql);
      for (const message of sequence.prepare) out.push({ message, hidden: true, plan: null });
      // The server runs the refusal; the tracker records the client's statement, which it answers for.
      out.push({
        message: sequence.execute,
        hidden: false,
        plan: answerPlan({ refusal: { statement, report: verdict.report } }),
        track: () => this.tracker.onClientMessage(Frontend.Execute, buf, start, end),
        decisions,
      });
      this.forecast.refused();
      this.skippingBatch = true;
      return this.emit(out);
    }
    const control = this.controlPlan(info);
    this.noteSent(rule, info);
    this.noteOutcomeMark(prepared.tags);
    if (control === null) return this.pass(out, Frontend.Execute, buf, start, end, decisions);
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
    return this.emit(out);
  }

  /**
   * Decides on a statement. Anything but a plain allow goes into
   * `decisions`, for the statement tracked at `index` of the message sent:
   * it is recorded once that statement starts and has its transaction.
   */
  private judge(rule: PolicyRule, info: StatementInfo, decisions: PendingDecision[], index: number): StatementVerdict {
    const verdict = decideStatement(rule, info, this.situation(rule));
    if (verdict.kind !== 'allow') {
      const decision = verdict.kind === 'warn' ? 'warned' : verdict.decision;
      const request = this.binding?.request ?? this.tracker.request;
      const { code, message } = verdict.report;
      decisions.push({ index, event: { rule, decision, sqlstate: code, message, request, transactionId: null, statement: info.text } });
    }
    return verdict;
  }

  /** A statement of the request carried `txproxy_outcome`: how its clean end goes. */
  private noteOutcomeMark(tags: SqlCommenterTags | null): void {
    const mark = outcomeMarkOf(tags);
    if (mark !== null && this.transaction !== null) this.transaction.mark = mark;
  }

  private situation(rule: PolicyRule): StatementSituation {
    const transaction = this.transaction;
    return {
      status: this.forecast.status,
      statementsBefore: transaction !== null ? transaction.statements : this.forecast.statementsBefore(),
      savepointDepth: this.forecast.savepointDepth,
      wrapper: rule.wraps ? { failed: this.binding?.failed ?? false, modes: transaction?.modes ?? null } : undefined,
    };
  }

  /** single-transaction: what the client's transaction control becomes; null: unchanged. */
  private controlPlan(info: StatementInfo): ServerStatement[] | null {
    if (info.txControl === null || (this.transaction === null && !(this.binding?.failed ?? false))) return null;
    // The forecast follows the client's view: T or E inside its own block.
    return planClientControl(info, this.forecast.status !== 'I', this.forecast.status === 'E');
  }

  private noteSent(rule: PolicyRule, info: StatementInfo): void {
    this.forecast.sent(info);
    if (this.transaction !== null) this.transaction.statements++;
    this.armDuration(rule);
  }

  /** Forwards the client's message as it is, after any control messages. */
  private pass(out: Outgoing[], type: number, buf: Buffer, start: number, end: number, decisions: PendingDecision[] = []): Verdict | 'default' {
    if (out.length === 0 && decisions.length === 0) return DEFAULT;
    out.push({ message: buf.subarray(start, end), hidden: false, plan: null, track: () => this.tracker.onClientMessage(type, buf, start, end), decisions });
    return this.emit(out);
  }

  /** Records the messages in the tracker, in order, and returns their bytes. */
  private emit(out: Outgoing[]): Buffer {
    for (const item of out) {
      const entry = item.track ? item.track() : this.tracker.onClientMessage(item.message[0], item.message, 0, item.message.length);
      if (item.decisions !== undefined) this.pending.add(entry, item.decisions);
      if (entry === null) continue; // the server skips it too (after an error, up to Sync)
      entry.hidden = item.hidden;
      if (item.plan !== null) this.plans.set(entry, item.plan);
      markOrigins(entry, item);
    }
    this.pending.recordStarted(false);
    return Buffer.concat(out.map((item) => item.message));
  }

  // ------------------------------------------------------------ requests

  /**
   * The rule for what the client sends now. At a new request the previous
   * one's transaction ends and, under a wrapping rule, the new one's
   * begins: the control statements go into `out`.
   */
  private enterRequest(tags: SqlCommenterTags | null, out: Outgoing[], form: Form, modes: () => string | null): PolicyRule {
    const binding = this.binding;
    // A new request cannot end a request transaction while the client's own block is open: it waits for its end.
    const deferred = this.transaction !== null && this.forecast.status !== 'I';
    if (binding !== null && !deferred && (this.tracker.request.id !== binding.request.id || this.tracker.startsNewRequest(tags))) {
      this.endRequest(out, form);
    }
    const request = this.tracker.observeRequest(tags);
    if (deferred) return binding!.rule;
    const rule = this.bind(request);
    if (this.mustOpenTransaction(rule)) this.openTransaction(out, form, modes());
    return rule;
  }

  private bind(request: RequestInfo): PolicyRule {
    const binding = this.binding;
    if (binding !== null && binding.request === request) return binding.rule;
    if (binding !== null && binding.request.id === request.id) {
      // The request got its sqlcommenter tags: route and controller can now match.
      binding.request = request;
      if (this.transaction === null && this.forecast.status === 'I') binding.rule = binding.policies.resolve(this.matchContext(request));
    } else {
      this.binding = { request, rule: this.policies.resolve(this.matchContext(request)), policies: this.policies, failed: false };
    }
    this.updateHooks();
    return this.binding!.rule;
  }

  /** The request is over: its transaction ends (commit, or rollback for dry-run). */
  private endRequest(out: Outgoing[], form: Form): void {
    // Boundaries are only taken at a message that starts something, never mid-batch.
    if (this.transaction !== null) out.push(...this.finishTransaction(form === 'simple' ? 'simple' : 'batch'));
    this.binding = null;
  }

  /**
   * A wrapping rule and no request transaction yet. Only from outside any
   * transaction: one the client opened before the rule applied (a reload)
   * is its own, and the request transaction begins after it.
   */
  private mustOpenTransaction(rule: PolicyRule): boolean {
    return rule.wraps && this.transaction === null && !this.binding!.failed && this.forecast.status === 'I';
  }

  private openTransaction(out: Outgoing[], form: Form, modes: string | null): void {
    const transaction = new RequestTransaction(this.binding!, modes, this.outcomes);
    this.transaction = transaction;
    this.clientBlock = false;
    out.push(...transaction.begin(form));
    this.armDuration(transaction.binding.rule);
    this.updateHooks();
  }

  /** The messages that end the request's transaction; the outcome is recorded when the server answers. */
  private finishTransaction(form: 'simple' | 'batch'): Outgoing[] {
    const transaction = this.transaction!;
    this.transaction = null;
    const out = transaction.finish(form, this.forecast.status !== 'I');
    this.closing.push(transaction);
    this.clientBlock = false;
    this.forecast.resync('I', []);
    return out;
  }

  // ------------------------------------------------------------ server messages

  private serverMessage(type: number, buf: Buffer, start: number, end: number, entry: Entry | null): Verdict {
    if (this.pending.size > 0) this.pending.recordStarted(false);
    if (entry === null) return FORWARD;
    const verdict: Verdict = entry.hidden ? DROP : FORWARD;
    switch (type) {
      case Backend.CommandComplete:
        return this.onComplete(entry, decodeCommandComplete(buf, start, end), verdict);
      case Backend.ErrorResponse:
        return this.onError(entry, buf, start, end, verdict);
      case Backend.ReadyForQuery:
        return this.onReady(decodeReadyForQuery(buf, start), verdict);
    }
    return verdict;
  }

  private onComplete(entry: Entry, tag: string, verdict: Verdict): Verdict {
    const plan = this.plans.get(entry);
    const step = plan !== undefined ? plan.steps[plan.cursor++] : undefined;
    if (step?.clientBlock !== undefined) this.clientBlock = step.clientBlock;
    const statement = completedStatement(entry);
    const changes = this.transaction?.changes ?? null;
    if (changes !== null && statement !== undefined) {
      const info = statement.info;
      if (info.savepoint !== null && (info.txControl === 'savepoint' || info.txControl === 'release' || info.txControl === 'rollback_to')) {
        changes.savepoint(info.txControl === 'savepoint' ? 'create' : info.txControl, info.savepoint);
      } else if (!entry.hidden) {
        changes.completed(tag, statement.text, statement.copy === 'in');
      }
    }
    if (plan?.control) this.controlAnswered(plan.control, statement, tag, null);
    if (verdict === DROP || step === undefined) return verdict;
    if (step.answer.kind === 'drop') return DROP;
    if (step.answer.kind === 'retag') {
      const complete = commandComplete(step.answer.tag);
      return step.answer.notice !== null ? Buffer.concat([noticeResponse(step.answer.notice), complete]) : complete;
    }
    return verdict;
  }

  private onError(entry: Entry, buf: Buffer, start: number, end: number, verdict: Verdict): Verdict {
    const plan = this.plans.get(entry);
    const transaction = this.transaction;
    if (plan === undefined && transaction === null) return verdict;
    const fields = decodeErrorFields(buf, start, end);
    const error: SqlError = { code: fields.code, message: fields.message };
    if (plan?.control) this.controlAnswered(plan.control, undefined, null, error);
    // An error outside the client's own block dooms the request's transaction.
    if (transaction !== null && !entry.hidden && !this.clientBlock) transaction.fail(error);
    const refusal = plan?.refusal;
    if (refusal && fields.code === refusal.statement.code && fields.message === refusal.statement.message) return errorResponse(refusal.report);
    return verdict;
  }

  private onReady(status: TxStatus, verdict: Verdict): Verdict {
    // The client sees its own status: idle while only txproxy's transaction is open.
    const shown = this.transaction !== null && !this.clientBlock && status !== 'I' ? 'I' : status;
    if (this.transaction?.failed) this.abortTransaction();
    if (this.tracker.pending === 0) {
      this.resync(status);
      if (status === 'I') this.timers.clearDuration();
      else this.armIdle();
    }
    if (verdict === DROP) return DROP;
    return shown === status ? verdict : readyForQuery(shown);
  }

  /** Nothing in flight: the forecast takes the server's word. */
  private resync(status: TxStatus): void {
    if (this.transaction !== null && status === 'I') {
      // Our BEGIN never ran (skipped after an error in the batch before it).
      this.transaction = null;
      this.clientBlock = false;
    }
    const names = this.tracker.savepointNames;
    if (this.transaction === null) {
      this.forecast.resync(status, names);
      return;
    }
    const block = names.lastIndexOf(CLIENT_BLOCK_SAVEPOINT);
    this.forecast.resync(this.clientBlock ? status : 'I', this.clientBlock && block >= 0 ? names.slice(block + 1) : []);
  }

  /** Rolls a doomed request transaction back now, rather than holding its locks until the request ends. */
  private abortTransaction(): void {
    const transaction = this.transaction!;
    const out = transaction.abort();
    // Only between client messages; otherwise the request's end rolls it back.
    if (!this.session.sendToServer(Buffer.concat(out.map((o) => o.message)))) return;
    this.emit(out);
    this.closing.push(transaction);
    this.transaction = null;
    this.clientBlock = false;
  }

  private controlAnswered(control: NonNullable<AnswerPlan['control']>, statement: StatementRecord | undefined, tag: string | null, error: SqlError | null): void {
    const opened = control.transaction.answered(control, statement, tag, error, this.tracker.transaction?.id ?? null);
    if (opened) return;
    if (this.transaction === control.transaction) this.transaction = null;
    this.closing = this.closing.filter((transaction) => transaction !== control.transaction);
  }

  // ------------------------------------------------------------ limits

  private armIdle(): void {
    const rule = this.binding?.rule;
    const limit = rule?.limits.idleInTransactionTimeoutMs ?? null;
    if (rule === undefined || limit === null) return;
    this.timers.armIdle(limit, () => {
      if (this.tracker.pending > 0 || this.tracker.status === 'I') return;
      this.limitReached(rule, PolicyErrors.idleInTransaction(rule, limit));
    });
  }

  private armDuration(rule: PolicyRule): void {
    const limit = rule.limits.maxTransactionDurationMs;
    if (limit === null || this.timers.durationArmed) return;
    this.timers.armDuration(limit, () => {
      if (this.tracker.status === 'I' && this.tracker.pending === 0) {
        this.timers.clearDuration(); // ended meanwhile; the next one arms anew
        return;
      }
      this.limitReached(rule, PolicyErrors.transactionTimeout(rule, limit));
    });
  }

  /** A timed limit ran out: end the session as PostgreSQL does (FATAL), or only report it. */
  private limitReached(rule: PolicyRule, report: Report): void {
    const enforce = rule.action === 'enforce';
    this.report(rule, enforce ? 'limit' : 'warned', report.code, enforce ? `${report.message}: ${report.detail}` : (report.detail ?? report.message));
    if (enforce) this.session.close(report);
  }

  // ------------------------------------------------------------ session events

  /** Terminate: a request's transaction commits (dry-run: rolls back) before the server sees it. */
  onTerminate(): Buffer | undefined {
    this.timers.clearIdle();
    if (this.transaction === null) return undefined;
    return this.emit(this.finishTransaction('simple'));
  }

  onEnd(clean: boolean): void {
    this.timers.clear();
    this.pending.recordStarted(true);
    const transaction = this.transaction;
    this.transaction = null;
    // Normally the tracker ended them already (as `disconnect`), and they were recorded then.
    transaction?.abandoned(clean);
    for (const closing of this.closing) closing.abandoned(clean);
    this.closing = [];
    this.reporter.detach(this.session.info);
  }

  /**
   * The tracker ended a transaction: if it is a request transaction, its
   * outcome is recorded now, ahead of the transaction's own record.
   * autocommit: warns when one request commits writes in two or more
   * separate implicit transactions.
   */
  transactionEnded(tx: TransactionRecord): void {
    this.requestTransactionEnded(tx);
    if (tx.outcome !== 'commit' || !tx.implicit || tx.writes === 0) return;
    // CREATE DATABASE, VACUUM … cannot run in a transaction block: no request could have made them atomic.
    if (tx.statementLog.length > 0 && tx.statementLog.every(cannotRunInBlock)) return;
    const request = tx.request;
    const rule = this.binding?.request.id === request.id ? this.binding.rule : this.policies.resolve(this.matchContext(request));
    if (rule.mode !== 'autocommit') return;
    if (this.orphans.requestId !== request.id) this.orphans = { requestId: request.id, writes: 0 };
    if (++this.orphans.writes !== 2) return;
    this.outcomes.decision(rule, 'warned', null, orphanWritesMessage(request.id, this.orphans.writes), request, tx.id);
  }

  private requestTransactionEnded(tx: TransactionRecord): void {
    if (this.transaction !== null && this.transaction.trackerId === tx.id) {
      this.transaction.ended(tx);
      return;
    }
    const i = this.closing.findIndex((transaction) => transaction.trackerId === tx.id);
    if (i < 0) return;
    this.closing[i].ended(tx);
    this.closing.splice(i, 1);
  }

  // ------------------------------------------------------------ helpers

  private report(rule: PolicyRule, decision: PolicyDecision, sqlstate: string | null, message: string, statement?: string): void {
    const request = this.binding?.request ?? this.tracker.request;
    const transactionId = this.tracker.transaction?.id ?? null;
    this.reporter.decision(this.session.info, { rule, decision, sqlstate, message, request, transactionId, statement });
  }

  private matchContext(request: RequestInfo | null): MatchContext {
    const info = this.session.info;
    return { user: info.user, database: info.database, applicationName: info.applicationName, clientAddress: info.clientAddress, request };
  }
}

/** Data changes are the usual writes: those are read again only when they may be VACUUM, CREATE DATABASE… */
const DATA_CHANGE = /^(?:INSERT|UPDATE|DELETE|MERGE|COPY|SELECT|WITH|TRUNCATE)\b/;

function cannotRunInBlock(statement: StatementSummary): boolean {
  return !DATA_CHANGE.test(statement.operation) && classifyStatement(statement.text).nonTransactional;
}

/**
 * The statement a CommandComplete just completed: a Query's entry has
 * already moved past it, the other entries hold exactly one.
 */
function completedStatement(entry: Entry): StatementRecord | undefined {
  return entry.statements[Math.max(entry.index - 1, 0)];
}
