/**
 * The timed limits of a rule — idle in transaction, transaction duration.
 * Their timers only say that time ran out; whether the limit was really
 * crossed is checked against the tracker then, since the transaction may
 * have ended or the client spoken meanwhile. A crossed limit ends the
 * session as PostgreSQL does (FATAL) under `enforce`, or is only reported.
 */
import { PolicyErrors } from '../policy/policy-errors.js';
import type { PolicyRule } from '../policy/policy-set.js';
import type { Report } from '../protocol/encode.js';
import type { EnforcedSession } from './enforcer-ports.js';
import { TransactionTimers } from './policy-timers.js';
import type { PolicyDecision } from './request-transaction.js';

/** Where a crossed limit is reported (the session's RequestScope). */
export interface LimitReporter {
  report(rule: PolicyRule, decision: PolicyDecision, sqlstate: string | null, message: string): void;
}

export class TransactionLimits {
  readonly timers = new TransactionTimers();

  constructor(
    private readonly session: EnforcedSession,
    private readonly reporter: LimitReporter,
  ) {}

  /** The session went idle inside a transaction, under `rule` (none: no limit). */
  armIdle(rule: PolicyRule | undefined): void {
    const limit = rule?.limits.idleInTransactionTimeoutMs ?? null;
    if (rule === undefined || limit === null) return;
    this.timers.armIdle(limit, () => {
      const tracker = this.session.tracker;
      if (tracker.pending > 0 || tracker.status === 'I') return;
      this.limitReached(rule, PolicyErrors.idleInTransaction(rule, limit));
    });
  }

  /** A statement is sent under `rule`: the transaction it runs in is timed from the first. */
  armDuration(rule: PolicyRule): void {
    const limit = rule.limits.maxTransactionDurationMs;
    if (limit === null || this.timers.durationArmed) return;
    this.timers.armDuration(limit, () => {
      const tracker = this.session.tracker;
      if (tracker.status === 'I' && tracker.pending === 0) {
        this.timers.clearDuration(); // ended meanwhile; the next one arms anew
        return;
      }
      this.limitReached(rule, PolicyErrors.transactionTimeout(rule, limit));
    });
  }

  /** A timed limit ran out: end the session as PostgreSQL does (FATAL), or only report it. */
  private limitReached(rule: PolicyRule, report: Report): void {
    const enforce = rule.action === 'enforce';
    this.reporter.report(rule, enforce ? 'limit' : 'warned', report.code, enforce ? `${report.message}: ${report.detail}` : (report.detail ?? report.message));
    if (enforce) this.session.close(report);
  }
}
