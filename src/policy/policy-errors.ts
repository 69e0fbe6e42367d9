/**
 * Every error and warning a policy sends to clients, in one list
 * (docs/policies.md documents each). Each uses the SQLSTATE PostgreSQL
 * itself would use in the same spot, names the rule, and says what to do.
 */
import type { Report } from '../protocol/encode.js';
import type { PolicyRule } from './policy-set.js';

const by = (rule: PolicyRule): string => `txproxy policy rule '${rule.name}' (${rule.mode})`;

/**
 * What became of a violating statement: with action `warn` it ran, and
 * the recorded message must not say it was refused.
 */
const verdictBy = (rule: PolicyRule): string =>
  rule.action === 'warn' ? `let through with a warning (action warn) by ${by(rule)}` : `refused by ${by(rule)}`;

export const PolicyErrors = {
  /** atomic: a write would commit on its own. */
  writeOutsideTransaction(rule: PolicyRule, operation: string): Report {
    return {
      severity: 'ERROR',
      code: '25P01', // no_active_sql_transaction
      message: `${operation || 'statement'} outside a transaction block ${verdictBy(rule)}`,
      detail: 'This policy requires every write to run inside an explicit transaction, so a request never leaves half of its changes behind.',
      hint: 'Run it between BEGIN and COMMIT (Django: transaction.atomic() or ATOMIC_REQUESTS; Rails: ActiveRecord::Base.transaction), or change the rule.',
    };
  },

  /** atomic: row locks that would be released as soon as the statement returns. */
  lockingReadOutsideTransaction(rule: PolicyRule, operation: string): Report {
    return {
      severity: 'ERROR',
      code: '25P01',
      message: `${operation} … FOR UPDATE/SHARE outside a transaction block ${verdictBy(rule)}`,
      detail: 'Outside a transaction block its row locks end with the statement and protect nothing.',
      hint: 'Run it between BEGIN and COMMIT (Django: select_for_update() inside transaction.atomic()).',
    };
  },

  /** read-only: any write. */
  readOnly(rule: PolicyRule, operation: string): Report {
    return {
      severity: 'ERROR',
      code: '25006', // read_only_sql_transaction
      message:
        rule.action === 'warn'
          ? `${operation || 'statement'} ${verdictBy(rule)}, which allows reads only`
          : `cannot execute ${operation || 'statement'} in a read-only transaction: ${by(rule)} allows reads only`,
      hint: 'Send writes through a connection this rule does not match, or change the rule.',
    };
  },

  /** single-transaction: an earlier error rolled the request's transaction back. */
  requestFailed(rule: PolicyRule): Report {
    return {
      severity: 'ERROR',
      code: '25P02', // in_failed_sql_transaction
      message: `current transaction is aborted: an earlier statement of this request failed and ${by(rule)} rolled the request's transaction back`,
      detail: 'Statements of this request are refused until it ends (a new sqlcommenter trace id, or the connection closes).',
      hint: 'To carry on after an error, run the statement that may fail inside a savepoint (Django: a nested transaction.atomic()).',
    };
  },

  /** single-transaction: txproxy owns the transaction, it cannot be prepared by the client. */
  prepareTransaction(rule: PolicyRule): Report {
    return {
      severity: 'ERROR',
      code: '0A000', // feature_not_supported
      message: `PREPARE TRANSACTION is not supported under ${by(rule)}: txproxy owns the request's transaction`,
      hint: 'Use a connection this rule does not match for two-phase commit.',
    };
  },

  /** single-transaction: BEGIN ISOLATION LEVEL … once the request's transaction has run statements. */
  transactionModes(rule: PolicyRule): Report {
    return {
      severity: 'ERROR',
      code: '25001', // active_sql_transaction
      message: `transaction modes cannot change inside the request's transaction of ${by(rule)}`,
      detail: "txproxy opened the request's transaction before its first statement; isolation level and access mode are fixed from then on.",
      hint: 'Give the modes on the BEGIN that starts the request, or set default_transaction_isolation for the role or database.',
    };
  },

  /** single-transaction: VACUUM, CREATE INDEX CONCURRENTLY … cannot run in any transaction. */
  nonTransactional(rule: PolicyRule, operation: string): Report {
    return {
      severity: 'ERROR',
      code: '25001',
      message: `${operation} cannot run inside the request's transaction of ${by(rule)}`,
      hint: 'Run it on a connection this rule does not match.',
    };
  },

  tooManyStatements(rule: PolicyRule, limit: number): Report {
    return {
      severity: 'ERROR',
      code: '54000', // program_limit_exceeded
      message:
        rule.action === 'warn'
          ? `transaction exceeds max_statements_per_transaction (${limit}) of ${by(rule)}; let through with a warning (action warn)`
          : `transaction would exceed max_statements_per_transaction (${limit}) of ${by(rule)}`,
      hint: 'Split the work into smaller transactions, or raise the limit.',
    };
  },

  savepointTooDeep(rule: PolicyRule, limit: number): Report {
    return {
      severity: 'ERROR',
      code: '54000',
      message:
        rule.action === 'warn'
          ? `savepoint depth exceeds max_savepoint_depth (${limit}) of ${by(rule)}; let through with a warning (action warn)`
          : `savepoint depth would exceed max_savepoint_depth (${limit}) of ${by(rule)}`,
      hint: 'Release savepoints that are done (RELEASE SAVEPOINT), or raise the limit.',
    };
  },

  /** The limit PostgreSQL calls idle_in_transaction_session_timeout: the session ends. */
  idleInTransaction(rule: PolicyRule, limitMs: number): Report {
    return {
      severity: 'FATAL',
      code: '25P03', // idle_in_transaction_session_timeout
      message: 'terminating connection due to idle-in-transaction timeout',
      detail: `${by(rule)} allows ${limitMs} ms idle inside a transaction (idle_in_transaction_timeout); the transaction was rolled back.`,
      hint: 'Commit or roll back before waiting on anything else; reconnect to continue.',
    };
  },

  /** The limit PostgreSQL calls transaction_timeout: the session ends. */
  transactionTimeout(rule: PolicyRule, limitMs: number): Report {
    return {
      severity: 'FATAL',
      code: '25P04', // transaction_timeout
      message: 'terminating connection due to transaction timeout',
      detail: `${by(rule)} allows a transaction ${limitMs} ms (max_transaction_duration); the transaction was rolled back.`,
      hint: 'Keep transactions short; reconnect to continue.',
    };
  },

  /** What PostgreSQL says to COMMIT or ROLLBACK outside a transaction block. */
  noTransactionInProgress(): Report {
    return { severity: 'WARNING', code: '25P01', message: 'there is no transaction in progress' };
  },
} as const;

/** The autocommit warning: one request, several writes committed separately. */
export function orphanWritesMessage(requestId: string, transactions: number): string {
  return (
    `request ${requestId} committed writes in ${transactions} separate autocommit transactions: ` +
    'a failure between them leaves the earlier ones committed (wrap the request in one transaction)'
  );
}
