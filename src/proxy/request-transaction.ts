/**
 * The transaction txproxy holds around a request (single-transaction and
 * dry-run): the statements that open and end it, and what is recorded when
 * the server answers them.
 */
import { DryRunChanges } from '../policy/dry-run-changes.js';
import type { PolicyRule, SessionPolicies } from '../policy/policy-set.js';
import { beginSql, finishSql } from '../policy/single-transaction.js';
import type { DecisionKind } from '../policy/statement-decision.js';
import type { RequestInfo, StatementRecord } from '../tracker/types.js';
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
    return controlMessages(form, [beginSql(this.modes)], this.plan('open', null));
  }

  /** The messages that end it at the request's clean end: COMMIT (dry-run: ROLLBACK). */
  finish(form: 'simple' | 'batch', clientBlock: boolean, transactionId: string | null): Outgoing[] {
    const sqls = finishSql({ dryRun: this.changes !== null, clientBlock, failed: this.failed });
    return controlMessages(form, sqls, this.plan('finish', transactionId));
  }

  /** The messages that roll it back now, after an error doomed it. */
  abort(transactionId: string | null): Outgoing[] {
    return controlMessages('batch', ['ROLLBACK'], this.plan('abort', transactionId));
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
  answered(control: NonNullable<AnswerPlan['control']>, statement: StatementRecord | undefined, tag: string | null, error: SqlError | null): boolean {
    const { request, rule } = this.binding;
    if (control.kind === 'open') {
      if (error === null) {
        this.sink.decision(rule, 'wrapped', null, `request ${request.id} runs in one transaction opened by txproxy (${rule.mode})`, request, null);
        return true;
      }
      // Without its transaction the request cannot be atomic: refuse the rest of it.
      this.binding.failed = true;
      return false;
    }
    // The ROLLBACK TO of a client block abandoned at the end precedes the COMMIT.
    if (tag !== null && statement?.info.txControl === 'rollback_to') return true;
    const failure = error ?? this.firstError;
    if (tag === 'COMMIT') {
      this.sink.decision(rule, 'committed', null, `request ${request.id}: txproxy committed the request's transaction (${this.statements} statements)`, request, control.transactionId);
    } else {
      const why =
        this.changes !== null && failure === null
          ? "dry run: the request's transaction was rolled back"
          : `the request's transaction was rolled back after an error${failure ? ` (${failure.code}: ${failure.message})` : ''}`;
      this.sink.decision(rule, 'rolled_back', failure?.code ?? null, `request ${request.id}: ${why}`, request, control.transactionId);
    }
    if (this.changes !== null) this.sink.dryRun(request, this.changes, failure);
    return true;
  }

  /** The session ended with it open: closing the server connection rolls it back. */
  abandoned(clean: boolean, transactionId: string | null): void {
    const { request, rule } = this.binding;
    const why = clean ? 'the session ended' : 'the client disconnected without Terminate';
    this.sink.decision(rule, 'rolled_back', null, `request ${request.id}: ${why}; the request's transaction was rolled back`, request, transactionId);
    if (this.changes !== null) this.sink.dryRun(request, this.changes, this.firstError);
  }

  private plan(kind: 'open' | 'finish' | 'abort', transactionId: string | null): () => AnswerPlan {
    return () => answerPlan({ control: { kind, transaction: this, transactionId } });
  }
}
