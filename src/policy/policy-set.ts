/**
 * The compiled policies: rules with their matchers, limits resolved against
 * the default, and the lookup that picks the rule for a request.
 *
 * A PolicySet never changes; a reload builds a new one. Sessions keep the
 * set their current request was resolved with, so new rules apply to new
 * requests only.
 */
import { buildMatchers, type MatchContext, type Matcher } from './matchers.js';
import type { CleanEndOutcome, LimitsConfig, PoliciesConfig, PolicyAction, PolicyMode } from './policy-config.js';

export interface Limits {
  maxTransactionDurationMs: number | null;
  idleInTransactionTimeoutMs: number | null;
  maxSavepointDepth: number | null;
  maxStatementsPerTransaction: number | null;
}

export const NO_LIMITS: Limits = Object.freeze({
  maxTransactionDurationMs: null,
  idleInTransactionTimeoutMs: null,
  maxSavepointDepth: null,
  maxStatementsPerTransaction: null,
});

/** The configuration's name for each limit. */
const LIMIT_KEYS: Record<keyof Limits, string> = {
  maxTransactionDurationMs: 'max_transaction_duration',
  idleInTransactionTimeoutMs: 'idle_in_transaction_timeout',
  maxSavepointDepth: 'max_savepoint_depth',
  maxStatementsPerTransaction: 'max_statements_per_transaction',
};

export class PolicyRule {
  /** True when the rule needs to see client messages: any mode but autocommit, or any limit. */
  readonly enforcing: boolean;

  constructor(
    readonly name: string,
    readonly mode: PolicyMode,
    readonly action: PolicyAction,
    readonly limits: Limits,
    readonly matchers: readonly Matcher[],
    /** single-transaction: how a clean end the client did not mark ends the request's transaction. */
    readonly onCleanEnd: CleanEndOutcome = 'commit',
  ) {
    this.enforcing = mode !== 'autocommit' || Object.values(limits).some((v) => v !== null);
  }

  /** The whole session wraps each request in one transaction (single-transaction, dry-run). */
  get wraps(): boolean {
    return this.mode === 'single-transaction' || this.mode === 'dry-run';
  }

  matches(context: MatchContext): boolean {
    for (const matcher of this.matchers) if (!matcher.matches(context)) return false;
    return true;
  }

  /** Only the matchers fixed for the session; the others are assumed to match. */
  couldMatchSession(context: MatchContext): boolean {
    for (const matcher of this.matchers) if (matcher.sessionLevel && !matcher.matches(context)) return false;
    return true;
  }

  explain(): string {
    const what = this.matchers.length === 0 ? 'every request' : this.matchers.map((m) => m.explain()).join(' and ');
    const limits = Object.entries(this.limits)
      .filter(([, v]) => v !== null)
      .map(([k, v]) => `${LIMIT_KEYS[k as keyof Limits]}=${v}${k.endsWith('Ms') ? 'ms' : ''}`);
    if (this.mode === 'single-transaction') limits.unshift(`on_clean_end=${this.onCleanEnd}`);
    return `rule '${this.name}' (${this.mode}, ${this.action}${limits.length ? ', ' + limits.join(', ') : ''}) for ${what}`;
  }
}

export class PolicySet {
  private constructor(
    readonly rules: readonly PolicyRule[],
    readonly fallback: PolicyRule,
    /** False when the configuration has no `policies:` section: nothing is checked or reported. */
    readonly enabled: boolean,
  ) {}

  /** No policies configured. */
  static disabled(): PolicySet {
    return new PolicySet([], new PolicyRule('default', 'autocommit', 'enforce', NO_LIMITS, []), false);
  }

  /** Compiles a validated `policies:` section; undefined: policies are off. */
  static compile(config: PoliciesConfig | undefined): PolicySet {
    if (config === undefined) return PolicySet.disabled();
    const base = config.default;
    const baseLimits = resolveLimits(base.limits, NO_LIMITS);
    const fallback = new PolicyRule('default', base.mode, base.action, baseLimits, [], base.on_clean_end);
    const rules = config.rules.map(
      (rule) =>
        new PolicyRule(
          rule.name,
          rule.mode ?? base.mode,
          rule.action ?? base.action,
          resolveLimits(rule.limits, baseLimits),
          buildMatchers(rule.match),
          rule.on_clean_end ?? base.on_clean_end,
        ),
    );
    return new PolicySet(rules, fallback, true);
  }

  /** The rules a session could ever match, decided once from its fixed fields. */
  forSession(context: MatchContext): SessionPolicies {
    return new SessionPolicies(
      this,
      this.rules.filter((rule) => rule.couldMatchSession(context)),
    );
  }

  /** First matching rule, else the default. */
  resolve(context: MatchContext): PolicyRule {
    for (const rule of this.rules) if (rule.matches(context)) return rule;
    return this.fallback;
  }
}

/** One session's view of a PolicySet: only the rules its user, database and address allow. */
export class SessionPolicies {
  /** True when some rule this session could match needs to see its messages. */
  readonly enforcing: boolean;

  constructor(
    readonly set: PolicySet,
    readonly candidates: readonly PolicyRule[],
  ) {
    this.enforcing = set.enabled && (set.fallback.enforcing || candidates.some((rule) => rule.enforcing));
  }

  resolve(context: MatchContext): PolicyRule {
    for (const rule of this.candidates) if (rule.matches(context)) return rule;
    return this.set.fallback;
  }
}

function resolveLimits(config: LimitsConfig, inherited: Limits): Limits {
  const pick = <T>(value: T | null | undefined, fallback: T | null): T | null => (value === undefined ? fallback : value);
  return {
    maxTransactionDurationMs: pick(config.max_transaction_duration, inherited.maxTransactionDurationMs),
    idleInTransactionTimeoutMs: pick(config.idle_in_transaction_timeout, inherited.idleInTransactionTimeoutMs),
    maxSavepointDepth: pick(config.max_savepoint_depth, inherited.maxSavepointDepth),
    maxStatementsPerTransaction: pick(config.max_statements_per_transaction, inherited.maxStatementsPerTransaction),
  };
}
