/**
 * The transaction txproxy holds around a request (single-transaction and
 * dry-run): the statements that open and end it, and what is recorded when
 * the server answers them.
 *
 * Its `policy` records carry the id the tracker gave the server's
 * transaction: `wrapped` when the server answers the BEGIN, and
 * `committed` / `rolled_back` when the tracker ends that transaction —
 * before the transaction's own record is written, so readers of the trace
 * find the decision inside the transaction it speaks about.
 */
import { DryRunChanges } from '../policy/dry-run-changes.js';
import type { CleanEndOutcome } from '../policy/policy-config.js';
import type { PolicyRule, SessionPolicies } from '../policy/policy-set.js';
import { decideCleanEnd } from '../policy/request-outcome.js';
import { beginSql, finishSql } from '../policy/single-transaction.js';
import type { DecisionKind } from '../policy/statement-decision.js';
import type { RequestInfo, StatementRecord, TransactionRecord } from '../tracker/types.js';
import { answerPlan, controlMessages, type AnswerPlan, type Form, type Outgoing } from './control-messages.js';

/** The rule a request was resolved to, kept until the request ends. */
export interface Binding {
  request: RequestInfo;
  rule: PolicyRule;
  /** The policies the rule came from (a reload does not change them for this request). */
  policies: SessionPolicies;
  /** An error rolled the request's transaction back: its further statements are refused. */
  failed: boolean;
}

export type PolicyDecision = DecisionKind | 'warned' | 'wrapped' | 'committed' | 'rolled_back';

export interface SqlError {
  code: string;
  message: string;
}

/** Where a request transaction's outcome goes. */
export interface OutcomeSink {
  decision(rule: PolicyRule, decision: PolicyDecision, sqlstate: string | null, message: string, request: RequestInfo, transactionId: string | null): void;
  dryRun(request: RequestInfo, changes: DryRunChanges, error: SqlError | null): void;
}

export class RequestTransaction {
  /** Client statements sent inside it. */
  statements = 0;
  /** An error outside the client's block doomed it; its ROLLBACK may still have to be sent. */
  failed = false;
  firstError: SqlError | null = null;
  /** dry-run: what the request changed. */
  readonly changes: DryRunChanges | null;
  /** How the request said it went (sqlcommenter `txproxy_outcome`); the last mark wins. */
  mark: CleanEndOutcome | null = null;
  /** The tracker's id of the server transaction, once the server answered the BEGIN. */
  trackerId: string | null = null;
  /** Why it is being ended, once txproxy sent its end. */
  private ending: string | null = null;
  /** Its outcome was recorded. */
  private reported = false;

  constructor(
    readonly binding: Binding,
    /** The transaction modes it was opened with (`ISOLATION LEVEL …`), null for none. */
    readonly modes: string | null,
    private readonly sink: OutcomeSink,
  ) {
    this.changes = binding.rule.mode === 'dry-run' ? new DryRunChanges() : null;
  }

  /** The messages that open it. */
  begin(form: Form): Outgoing[] {
    return controlMessages(form, [beginSql(this.modes)], this.plan('open'));
  }

  /**
   * The messages that end it at the request's clean end: COMMIT, or
   * ROLLBACK when the request failed, is a dry run, or its outcome (mark or
   * `on_clean_end`) says so.
   */
  finish(form: 'simple' | 'batch', clientBlock: boolean): Outgoing[] {
    const decision = decideCleanEnd(this.binding.rule.onCleanEnd, this.mark);
    if (this.changes !== null) this.ending = "dry run: the request's transaction was rolled back";
    else if (this.failed) this.ending = "the request's transaction was rolled back after an error";
    else this.ending = `txproxy ${decision.commit ? 'committed' : 'rolled back'} the request's transaction at its clean end: ${decision.reason}`;
    const sqls = finishSql({ dryRun: this.changes !== null, clientBlock, failed: this.failed, commit: decision.commit });
    return controlMessages(form, sqls, this.plan('finish'));
  }

  /** The messages that roll it back now, after an error doomed it. */
  abort(): Outgoing[] {
    this.ending = "the request's transaction was rolled back after an error";
    return controlMessages('batch', ['ROLLBACK'], this.plan('abort'));
  }

  /** An error outside the client's own block: the request fails, as an exception does under ATOMIC_REQUESTS. */
  fail(error: SqlError): void {
    this.failed = true;
    this.firstError ??= error;
    this.binding.failed = true;
  }

  /**
   * The server answered one of its control statements (with a tag, or an
   * error). Returns false when it could not be opened.
   */
  answered(control: NonNullable<AnswerPlan['control']>, statement: StatementRecord | undefined, tag: string | null, error: SqlError | null, trackerId: string | null): boolean {
    const { request, rule } = this.binding;
    if (control.kind === 'open') {
      if (error === null) {
        this.trackerId = trackerId;
        this.sink.decision(rule, 'wrapped', null, `request ${request.id} runs in one transaction opened by txproxy (${rule.mode})`, request, trackerId);
        return true;
      }
      // Without its transaction the request cannot be atomic: refuse the rest of it.
      this.binding.failed = true;
      return false;
    }
    // The ROLLBACK TO of a client block abandoned at the end precedes the COMMIT.
    if (tag !== null && statement?.info.txControl === 'rollback_to') return true;
    // Normally recorded already, when the tracker ended the server's transaction.
    if (!this.reported) this.record(tag === 'COMMIT', error ?? this.firstError, this.trackerId);
    return true;
  }

  /** The tracker ended the server transaction it holds (`trackerId`): record how. */
  ended(tx: TransactionRecord): void {
    if (this.reported) return;
    // The request's own failure only: an error its client recovered from (ROLLBACK TO) is no reason.
    // A failing COMMIT was recorded with its error when the server answered it.
    const error = this.firstError;
    if (tx.outcome === 'disconnect' && this.ending === null) {
      const { request, rule } = this.binding;
      this.reported = true;
      this.sink.decision(rule, 'rolled_back', null, `request ${request.id}: the session ended with the request's transaction open; it was rolled back`, request, tx.id);
      if (this.changes !== null) this.sink.dryRun(request, this.changes, error);
      return;
    }
    this.record(tx.outcome === 'commit', error, tx.id);
  }

  /** The session ended before the tracker saw the server's transaction end. */
  abandoned(clean: boolean): void {
    if (this.reported) return;
    const { request, rule } = this.binding;
    this.reported = true;
    const why = clean ? 'the session ended' : 'the client disconnected without Terminate';
    this.sink.decision(rule, 'rolled_back', null, `request ${request.id}: ${why}; the request's transaction was rolled back`, request, this.trackerId);
    if (this.changes !== null) this.sink.dryRun(request, this.changes, this.firstError);
  }

  private record(committed: boolean, failure: SqlError | null, transactionId: string | null): void {
    const { request, rule } = this.binding;
    this.reported = true;
    if (committed) {
      const why = this.ending ?? "txproxy committed the request's transaction";
      this.sink.decision(rule, 'committed', null, `request ${request.id}: ${why} (${this.statements} statements)`, request, transactionId);
    } else {
      let why = this.ending ?? "the request's transaction was rolled back";
      if (failure !== null && this.changes === null) why = `the request's transaction was rolled back after an error (${failure.code}: ${failure.message})`;
      this.sink.decision(rule, 'rolled_back', failure?.code ?? null, `request ${request.id}: ${why}`, request, transactionId);
    }
    if (this.changes !== null) this.sink.dryRun(request, this.changes, failure);
  }

  private plan(kind: 'open' | 'finish' | 'abort'): () => AnswerPlan {
    return () => answerPlan({ control: { kind, transaction: this } });
  }
}
