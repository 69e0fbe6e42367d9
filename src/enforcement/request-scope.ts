/**
 * The request a session's client is in, the rule bound to it, and the
 * transaction txproxy holds around it (single-transaction, dry-run).
 *
 * A request is bound to the rule it resolved to when it started, and keeps
 * it to its end: a reload or a new application_name changes the rules of
 * the next request only (unless nothing of this one ran in a transaction
 * yet). Request boundaries are taken only at a message that starts
 * something — a Query, or the first message of an extended batch — since
 * nothing of the new request has reached the server there.
 */
import type { MatchContext } from '../policy/matchers.js';
import type { PolicyRule, SessionPolicies } from '../policy/policy-set.js';
import { CLIENT_BLOCK_SAVEPOINT } from '../policy/single-transaction.js';
import { TransactionForecast } from '../policy/transaction-forecast.js';
import type { TxStatus } from '../protocol/codes.js';
import type { SqlCommenterTags } from '../sql/sqlcommenter.js';
import type { SessionTracker } from '../tracker/session-tracker.js';
import type { RequestInfo, StatementRecord, TransactionRecord } from '../tracker/types.js';
import type { AnswerPlan, Form, Outgoing } from './control-messages.js';
import type { EnforcedSession, PolicyReporter } from './enforcer-ports.js';
import { RequestTransaction, type Binding, type OutcomeSink, type PolicyDecision, type SqlError } from './request-transaction.js';
import { TransactionLimits, type LimitReporter } from './transaction-limits.js';

export class RequestScope implements LimitReporter {
  /** The rules this session matches now; the bound request may still run under older ones. */
  private policies: SessionPolicies;
  binding: Binding | null = null;
  /** single-transaction / dry-run: the transaction txproxy holds around the request. */
  transaction: RequestTransaction | null = null;
  /** The client is inside its own block, as the answers so far say. */
  clientBlock = false;
  /** Where the client's statements sent so far leave the session, ahead of the server's answers. */
  readonly forecast = new TransactionForecast();
  readonly limits: TransactionLimits;
  readonly outcomes: OutcomeSink = {
    decision: (rule, decision, sqlstate, message, request, transactionId) =>
      this.reporter.decision(this.session.info, { rule, decision, sqlstate, message, request, transactionId }),
    dryRun: (request, changes, error) => this.reporter.dryRun(this.session.info, { request, changes, error }),
  };
  /** Request transactions whose end was sent, until the tracker sees it. */
  private closing: RequestTransaction[] = [];

  constructor(
    private readonly session: EnforcedSession,
    private readonly reporter: PolicyReporter,
    /** Whether the session needs the enforcer may have changed (see PolicyEnforcer.updateHooks). */
    private readonly hooksChanged: () => void,
  ) {
    this.limits = new TransactionLimits(session, this);
    this.policies = reporter.current().forSession(this.matchContext(null));
  }

  private get tracker(): SessionTracker {
    return this.session.tracker;
  }

  /** Whether the session's messages must pass through the enforcer: otherwise its hot path goes without hooks. */
  get needsEnforcer(): boolean {
    const binding = this.binding;
    return this.policies.enforcing || this.transaction !== null || (binding !== null && (binding.rule.enforcing || binding.failed));
  }

  /** The request decisions are about: the bound one, else the tracker's. */
  get request(): RequestInfo {
    return this.binding?.request ?? this.tracker.request;
  }

  /** The policies were reloaded: the current request keeps its rule, the next one gets the new ones. */
  reload(): void {
    if (this.binding === null) {
      // A session without hooks has not resolved its request yet: do it under the rules it started with.
      const request = this.tracker.request;
      this.binding = { request, rule: this.policies.resolve(this.matchContext(request)), policies: this.policies, failed: false };
    }
    this.policies = this.reporter.current().forSession(this.matchContext(null));
  }

  /** SET application_name: the rules this session can match change with it, from now on. */
  applicationNameChanged(): void {
    this.policies = this.reporter.current().forSession(this.matchContext(null));
    const binding = this.binding;
    if (binding !== null && this.transaction === null && this.forecast.status === 'I') {
      binding.policies = binding.policies.set.forSession(this.matchContext(null));
      binding.rule = binding.policies.resolve(this.matchContext(binding.request));
    }
  }

  /** The rule a transaction of `request` ran under, for checks made after it ended. */
  ruleOf(request: RequestInfo): PolicyRule {
    return this.binding?.request.id === request.id ? this.binding.rule : this.policies.resolve(this.matchContext(request));
  }

  // ------------------------------------------------------------ request boundaries

  /**
   * The rule for what the client sends now. At a new request the previous
   * one's transaction ends and, under a wrapping rule, the new one's
   * begins: the control statements go into `out`.
   */
  enter(tags: SqlCommenterTags | null, out: Outgoing[], form: Form, modes: () => string | null): PolicyRule {
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
    this.hooksChanged();
    return this.binding!.rule;
  }

  /** The request is over: its transaction ends (commit, or rollback for dry-run). */
  private endRequest(out: Outgoing[], form: Form): void {
    // Boundaries are only taken at a message that starts something, never mid-batch.
    if (this.transaction !== null) out.push(...this.finishTransaction(form === 'simple' ? 'simple' : 'batch'));
    this.binding = null;
  }

  // ------------------------------------------------------------ the request transaction

  /**
   * A wrapping rule and no request transaction yet. Only from outside any
   * transaction: one the client opened before the rule applied (a reload)
   * is its own, and the request transaction begins after it.
   */
  mustOpenTransaction(rule: PolicyRule): boolean {
    return rule.wraps && this.transaction === null && !this.binding!.failed && this.forecast.status === 'I';
  }

  openTransaction(out: Outgoing[], form: Form, modes: string | null): void {
    const transaction = new RequestTransaction(this.binding!, modes, this.outcomes);
    this.transaction = transaction;
    this.clientBlock = false;
    out.push(...transaction.begin(form));
    this.limits.armDuration(transaction.binding.rule);
    this.hooksChanged();
  }

  /** The messages that end the request's transaction; the outcome is recorded when the server answers. */
  finishTransaction(form: 'simple' | 'batch'): Outgoing[] {
    const transaction = this.transaction!;
    this.transaction = null;
    const out = transaction.finish(form, this.forecast.status !== 'I');
    this.closing.push(transaction);
    this.clientBlock = false;
    this.forecast.resync('I', []);
    return out;
  }

  /** The request transaction's ROLLBACK went to the server: it is closing. */
  aborted(transaction: RequestTransaction): void {
    this.closing.push(transaction);
    this.transaction = null;
    this.clientBlock = false;
  }

  /** Nothing in flight: the forecast takes the server's word. */
  resync(status: TxStatus): void {
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

  /** The server answered a statement that opens or ends a request transaction. */
  controlAnswered(control: NonNullable<AnswerPlan['control']>, statement: StatementRecord | undefined, tag: string | null, error: SqlError | null): void {
    const opened = control.transaction.answered(control, statement, tag, error, this.tracker.transaction?.id ?? null);
    if (opened) return;
    if (this.transaction === control.transaction) this.transaction = null;
    this.closing = this.closing.filter((transaction) => transaction !== control.transaction);
  }

  /**
   * The tracker ended a transaction: if it is a request transaction, its
   * outcome is recorded now, ahead of the transaction's own record.
   */
  transactionEnded(tx: TransactionRecord): void {
    if (this.transaction !== null && this.transaction.trackerId === tx.id) {
      this.transaction.ended(tx);
      return;
    }
    const i = this.closing.findIndex((transaction) => transaction.trackerId === tx.id);
    if (i < 0) return;
    this.closing[i].ended(tx);
    this.closing.splice(i, 1);
  }

  /** The session ended: request transactions not seen to end were rolled back with it. */
  abandon(clean: boolean): void {
    const transaction = this.transaction;
    this.transaction = null;
    // Normally the tracker ended them already (as `disconnect`), and they were recorded then.
    transaction?.abandoned(clean);
    for (const closing of this.closing) closing.abandoned(clean);
    this.closing = [];
  }

  // ------------------------------------------------------------ decisions

  report(rule: PolicyRule, decision: PolicyDecision, sqlstate: string | null, message: string): void {
    const request = this.request;
    const transactionId = this.tracker.transaction?.id ?? null;
    this.reporter.decision(this.session.info, { rule, decision, sqlstate, message, request, transactionId, statement: undefined });
  }

  private matchContext(request: RequestInfo | null): MatchContext {
    const info = this.session.info;
    return { user: info.user, database: info.database, applicationName: info.applicationName, clientAddress: info.clientAddress, request };
  }
}
