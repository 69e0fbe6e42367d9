/**
 * What policy enforcement deals with outside itself: the session whose
 * bytes it changes, and the reporter its decisions go to (the
 * PolicyService: trace records, metrics).
 */
import type { DryRunChanges } from '../policy/dry-run-changes.js';
import type { PolicyRule, PolicySet } from '../policy/policy-set.js';
import type { Report } from '../protocol/encode.js';
import type { SessionTracker } from '../tracker/session-tracker.js';
import type { RequestInfo, SessionInfo } from '../tracker/types.js';
import type { PolicyDecision, SqlError } from './request-transaction.js';

/** What the enforcer needs of its session (src/proxy/session.ts). */
export interface EnforcedSession {
  readonly info: SessionInfo;
  readonly tracker: SessionTracker;
  close(report: Report | null): void;
  sendToServer(bytes: Buffer): boolean;
}

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
