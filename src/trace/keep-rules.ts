/**
 * Which transactions the trace keeps when `trace.keep.sample` is below 1:
 * the decision table of tail sampling, pure. What a transaction showed is
 * a set of signal bits, gathered from its records as they pass; a
 * transaction is kept when one of its signals is one the rules keep, or
 * when the sample draw picked it.
 */
import type { TransactionRecord } from '../tracker/types.js';

/** Signals, as bits: a transaction collects them in one number, no allocation. */
export const Signal = {
  /** A statement error, or the transaction ended failed or by a client disconnect. */
  Error: 1,
  /** A deadlock record names the transaction (victim or another process of the cycle). */
  Deadlock: 2,
  /** A lock_wait record, or lock wait time on a statement or the transaction. */
  LockWait: 4,
  /** A policy record names the transaction: a statement refused or warned about, a limit reached. */
  Policy: 8,
  /** It lasted `slower_than` or longer. */
  Slow: 16,
  /** A second (or later) autocommit transaction with writes in one request. */
  NotAtomic: 32,
} as const;

export interface KeepConfig {
  sample: number;
  slower_than: number | null;
  errors: boolean;
  deadlocks: boolean;
  lock_waits: boolean;
  policies: boolean;
  not_atomic: boolean;
  max_held: number;
}

export interface KeepRules {
  /** Fraction of the other transactions kept, 0 to 1. */
  sample: number;
  /** Signals that keep a transaction, as bits. */
  keepMask: number;
  /** Duration from which a transaction is slow; Infinity when off. */
  slowerThanMs: number;
  /** Records held per transaction before it is decided early. */
  maxHeld: number;
}

/**
 * The rules for a configuration; null when every transaction is kept
 * (sample 1): then nothing is held and the trace costs what it always did.
 */
export function keepRules(config: KeepConfig): KeepRules | null {
  if (config.sample >= 1) return null;
  let keepMask = 0;
  if (config.errors) keepMask |= Signal.Error;
  if (config.deadlocks) keepMask |= Signal.Deadlock;
  if (config.lock_waits) keepMask |= Signal.LockWait;
  if (config.policies) keepMask |= Signal.Policy;
  if (config.slower_than !== null) keepMask |= Signal.Slow;
  if (config.not_atomic) keepMask |= Signal.NotAtomic;
  return { sample: config.sample, keepMask, slowerThanMs: config.slower_than ?? Infinity, maxHeld: config.max_held };
}

/** Whether a transaction with these signals is kept; `sampled` is the draw's answer. */
export function keeps(rules: KeepRules, signals: number, sampled: boolean): boolean {
  return sampled || (signals & rules.keepMask) !== 0;
}

/** What the transaction record itself tells: its outcome, error, lock wait and duration. */
export function transactionSignals(rules: KeepRules, t: TransactionRecord): number {
  let signals = 0;
  if (t.firstError !== null || t.outcome === 'failed' || t.outcome === 'disconnect') signals |= Signal.Error;
  if (t.lockWaitMs > 0) signals |= Signal.LockWait;
  if (t.durationMs >= rules.slowerThanMs) signals |= Signal.Slow;
  return signals;
}

/**
 * Policy decisions that keep their transaction: those that refused, warned
 * or ended something (the ones txproxy_policy_violations_total counts).
 * The routine records of single-transaction and dry-run requests (`wrapped`,
 * `committed`, `rolled_back`) would keep every such request: they follow
 * their transaction's decision like any record.
 */
const KEEPING_DECISIONS = new Set(['refused', 'limit', 'warned']);

/** What a trace record of another kind (lock_wait, deadlock, policy) tells about its transaction. */
export function recordSignal(record: Record<string, unknown>): number {
  switch (record.kind) {
    case 'lock_wait':
      return Signal.LockWait;
    case 'deadlock':
      return Signal.Deadlock;
    case 'policy':
      return KEEPING_DECISIONS.has(record.decision as string) ? Signal.Policy : 0;
    default:
      return 0;
  }
}

/** The sample draw: true for a fraction `sample` of calls. */
export function drawSample(sample: number, random: () => number = Math.random): boolean {
  return sample > 0 && random() < sample;
}
