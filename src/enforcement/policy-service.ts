/**
 * The policies of a running txproxy: the current PolicySet, one enforcer
 * per session, and where decisions go — a `policy` (and `dry_run`) trace
 * record on the App's trace bus, and `txproxy_policy_violations_total`.
 *
 * A reload swaps the PolicySet; each session's current request keeps the
 * rule it was resolved with, and its next request gets the new rules.
 */
import type { Logger } from 'pino';
import type { PolicyAction } from '../policy/policy-config.js';
import type { PolicySet } from '../policy/policy-set.js';
import type { TraceText } from '../trace/trace-text.js';
import type { TraceBus } from '../trace/trace-sink.js';
import type { SessionInfo, TrackerListener } from '../tracker/types.js';
import type { DecisionEvent, DryRunEvent, EnforcedSession, PolicyReporter } from './enforcer-ports.js';
import { PolicyEnforcer } from './policy-enforcer.js';

/**
 * Counts decisions that refused, ended or warned (not the routine ones:
 * wrapped, committed, rolled back). The metrics module provides it as
 * `txproxy_policy_violations_total{rule,action}`.
 */
export interface PolicyViolationCounter {
  inc(rule: string, action: PolicyAction): void;
}

export interface PolicyServiceOptions {
  policies: PolicySet;
  /** The App's trace bus; records are built only while something listens. */
  trace: TraceBus;
  traceText: TraceText;
  violations?: PolicyViolationCounter;
  log: Logger;
}

const VIOLATIONS = new Set<DecisionEvent['decision']>(['refused', 'warned', 'limit']);

export class PolicyService implements PolicyReporter {
  private set: PolicySet;
  private readonly enforcers = new Map<string, PolicyEnforcer>();

  /** Tracker events the policies need beyond the session hooks (per transaction only). */
  readonly listener: TrackerListener = {
    transactionEnded: (session, tx) => {
      if (!this.set.enabled) return;
      this.enforcers.get(session.id)?.transactionEnded(tx);
    },
  };

  constructor(private readonly options: PolicyServiceOptions) {
    this.set = options.policies;
  }

  current(): PolicySet {
    return this.set;
  }

  /** The interceptor for a new session. */
  attach(session: EnforcedSession): PolicyEnforcer {
    const enforcer = new PolicyEnforcer(session, this);
    this.enforcers.set(session.info.id, enforcer);
    return enforcer;
  }

  detach(session: SessionInfo): void {
    this.enforcers.delete(session.id);
  }

  /** New policies: sessions pick them up at their next request. */
  update(set: PolicySet): void {
    this.set = set;
    for (const enforcer of this.enforcers.values()) enforcer.refresh();
  }

  decision(session: SessionInfo, event: DecisionEvent): void {
    const action: PolicyAction = event.decision === 'warned' ? 'warn' : 'enforce';
    if (VIOLATIONS.has(event.decision)) this.options.violations?.inc(event.rule.name, action);
    if (event.decision === 'limit') {
      this.options.log.info({ session: session.id, rule: event.rule.name, sqlstate: event.sqlstate }, 'policy limit ended a session');
    }
    const trace = this.options.trace;
    if (!trace.active) return;
    const record: Record<string, unknown> = {
      kind: 'policy',
      time: new Date().toISOString(),
      'session.id': session.id,
      'transaction.id': event.transactionId,
      'db.namespace': session.database,
      rule: event.rule.name,
      mode: event.rule.mode,
      action,
      decision: event.decision,
      sqlstate: event.sqlstate,
      message: event.message,
    };
    if (event.statement !== undefined) {
      const text = this.sql(event.statement);
      if (text !== undefined) record['db.query.text'] = text;
    }
    this.options.traceText.addRequest(record, event.request);
    trace.write(record);
  }

  dryRun(session: SessionInfo, event: DryRunEvent): void {
    const trace = this.options.trace;
    if (!trace.active) return;
    const record: Record<string, unknown> = {
      kind: 'dry_run',
      time: new Date().toISOString(),
      'session.id': session.id,
      'db.namespace': session.database,
      changes: event.changes.list.map((change) => ({ command: change.command, rows: change.rows, statement: this.sql(change.statement) ?? null })),
      rows_total: event.changes.rowsTotal,
      rolled_back: true,
    };
    if (event.error !== null) record.error = { ...event.error, message: this.options.traceText.errorMessage(event.error.message) };
    this.options.traceText.addRequest(record, event.request);
    trace.write(record);
  }

  private sql(text: string): string | undefined {
    return this.options.traceText.sql(text);
  }
}
