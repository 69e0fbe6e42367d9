/**
 * The Prometheus metrics of statements, transactions, savepoints and errors
 * (docs/metrics.md), kept up to date from the tracker's events.
 *
 * Per statement this costs a few Map lookups and additions: each session
 * keeps the cells of its database and of its current request's route, and
 * label values come from fixed or configured sets (src/metrics/labels.ts).
 */
import type { Registry } from 'prom-client';
import type { ErrorFields } from '../protocol/decode.js';
import { SessionSlot } from '../tracker/session-slot.js';
import type { RequestInfo, SavepointOp, SessionInfo, StatementRecord, TrackerListener, TransactionRecord } from '../tracker/types.js';
import { acceptsSqlstate, commandLabel, OTHER, RouteLabels } from './labels.js';
import { CounterFamily, HistogramFamily, type CounterCell, type HistogramCell } from './metric-cells.js';

/** Seconds. Statements: sub-millisecond point lookups up to long reports. */
export const STATEMENT_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
export const TRANSACTION_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];
export const IDLE_BUCKETS = [0.001, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300];

/** SQLSTATEs after which a client is expected to run the transaction again. */
const RETRYABLE = new Set([
  '40001', // serialization_failure
  '40P01', // deadlock_detected
  '55P03', // lock_not_available
]);

const LOCK_NOT_AVAILABLE = '55P03';
const SERIALIZATION_FAILURE = '40001';

export type PolicyAction = 'enforce' | 'warn';

/** What the policy engine reports: one call per decision that refused or warned. */
export interface PolicyViolationCounter {
  policyViolation(rule: string, action: PolicyAction): void;
}

interface StatementCells {
  ok: CounterCell | null;
  error: CounterCell | null;
  interrupted: CounterCell | null;
}

/** The cells of one database and route: statements and transactions. */
interface RouteCells {
  route: string;
  statements: Map<string, StatementCells>;
  /** outcome → [explicit, implicit] */
  transactions: Map<string, [CounterCell | null, CounterCell | null]>;
  /** [explicit, implicit] */
  transactionDuration: [HistogramCell | null, HistogramCell | null];
  /** By operation (`SELECT`, `CREATE TABLE`): one lookup per statement rather than three. */
  operations: Map<string, OperationCells>;
}

/** Operations remembered per route; a text can name its own (a statement not starting with a word), so they are bounded. */
const OPERATIONS_PER_ROUTE = 64;

interface DatabaseCells {
  database: string;
  /** command label → duration */
  statementDuration: Map<string, HistogramCell>;
  errors: Map<string, CounterCell>;
  errorsOther: CounterCell | null;
  lockNotAvailable: CounterCell;
  serializationFailures: CounterCell;
  retries: Map<string, CounterCell>;
  idleInTransaction: HistogramCell;
  routes: Map<string, RouteCells>;
}

/** The cells of one operation's statements in one route. */
interface OperationCells {
  command: string;
  cells: StatementCells;
  duration: HistogramCell;
}

interface SessionScope {
  db: DatabaseCells;
  /** The request `route` below belongs to; compared by identity. */
  request: RequestInfo | null;
  route: RouteCells | null;
  /** Set when a transaction of this request failed with a retryable error. */
  retry: { requestId: string; sqlstate: string } | null;
}

/**
 * Where OpenTelemetry export reports the trace of a transaction or
 * statement it exported: the duration histograms then carry it as an
 * exemplar (src/otel/transaction-spans.ts calls it, only for exported ones).
 */
export interface TracedObservations {
  transactionTraced(session: SessionInfo, tx: TransactionRecord, traceId: string, spanId: string): void;
  statementTraced(session: SessionInfo, statement: StatementRecord, traceId: string, spanId: string): void;
}

export class ProxyMetrics implements TrackerListener, PolicyViolationCounter, TracedObservations {
  private readonly routes: RouteLabels;
  private readonly statements: CounterFamily;
  private readonly statementDuration: HistogramFamily;
  private readonly transactions: CounterFamily;
  private readonly transactionDuration: HistogramFamily;
  private readonly idleInTransaction: HistogramFamily;
  private readonly savepoints: CounterFamily;
  private readonly savepointCells: Record<SavepointOp, CounterCell>;
  private readonly errors: CounterFamily;
  private readonly lockNotAvailable: CounterFamily;
  private readonly serializationFailures: CounterFamily;
  private readonly retries: CounterFamily;
  private readonly policyViolations: CounterFamily;
  private readonly policyCells = new Map<string, Map<string, CounterCell>>();

  private readonly databases = new Map<string, DatabaseCells>();
  private readonly scopes = new SessionSlot<SessionScope>();

  constructor(registry: Registry, options: { routes: readonly string[] }) {
    this.routes = new RouteLabels(options.routes);
    this.statements = new CounterFamily(registry, {
      name: 'txproxy_statements_total',
      help: 'Statements finished, by database, command, outcome (ok, error, interrupted) and route.',
      labelNames: ['database', 'command', 'outcome', 'route'],
    });
    this.statementDuration = new HistogramFamily(registry, {
      name: 'txproxy_statement_duration_seconds',
      help: 'Time from the server starting a statement to its completion, by database and command.',
      labelNames: ['database', 'command'],
      buckets: STATEMENT_BUCKETS,
    });
    this.transactions = new CounterFamily(registry, {
      name: 'txproxy_transactions_total',
      help: 'Transactions ended, by database, outcome (commit, rollback, failed, disconnect, prepared), implicit and route.',
      labelNames: ['database', 'outcome', 'implicit', 'route'],
    });
    this.transactionDuration = new HistogramFamily(registry, {
      name: 'txproxy_transaction_duration_seconds',
      help: 'Transaction duration from its first statement to its end, by database, implicit and route.',
      labelNames: ['database', 'implicit', 'route'],
      buckets: TRANSACTION_BUCKETS,
    });
    this.idleInTransaction = new HistogramFamily(registry, {
      name: 'txproxy_idle_in_transaction_seconds',
      help: 'Per explicit transaction, the time the server waited on the client inside it, by database.',
      labelNames: ['database'],
      buckets: IDLE_BUCKETS,
    });
    this.savepoints = new CounterFamily(registry, {
      name: 'txproxy_savepoints_total',
      help: 'Savepoint operations, by op (create, release, rollback_to).',
      labelNames: ['op'],
    });
    this.savepointCells = {
      create: this.savepoints.cell('create'),
      release: this.savepoints.cell('release'),
      rollback_to: this.savepoints.cell('rollback_to'),
    };
    this.errors = new CounterFamily(registry, {
      name: 'txproxy_errors_total',
      help: 'ErrorResponses from the server, by database and SQLSTATE.',
      labelNames: ['database', 'sqlstate'],
    });
    this.lockNotAvailable = new CounterFamily(registry, {
      name: 'txproxy_lock_not_available_total',
      help: 'Statements that failed with 55P03 lock_not_available (NOWAIT, lock_timeout), by database.',
      labelNames: ['database'],
    });
    this.serializationFailures = new CounterFamily(registry, {
      name: 'txproxy_serialization_failures_total',
      help: 'Statements that failed with 40001 serialization_failure, by database.',
      labelNames: ['database'],
    });
    this.retries = new CounterFamily(registry, {
      name: 'txproxy_transaction_retries_total',
      help: 'Transactions started by a request whose previous transaction failed with 40001, 40P01 or 55P03, by database and that SQLSTATE.',
      labelNames: ['database', 'sqlstate'],
    });
    this.policyViolations = new CounterFamily(registry, {
      name: 'txproxy_policy_violations_total',
      help: 'Policy decisions that refused (enforce) or let through with a warning (warn), by rule and action.',
      labelNames: ['rule', 'action'],
    });
  }

  // ------------------------------------------------------------ sessions

  sessionStarted(session: SessionInfo): void {
    this.scopeOf(session);
  }

  sessionEnded(session: SessionInfo): void {
    this.scopes.delete(session);
  }

  // ------------------------------------------------------------ statements

  statementFinished(session: SessionInfo, s: StatementRecord): void {
    const scope = this.scopeOf(session);
    const route = scope.request === s.request && scope.route !== null ? scope.route : this.enterRequest(scope, s.request);
    const { command, cells, duration } = route.operations.get(s.info.operation) ?? this.operationCells(scope.db, route, s.info.operation);
    const db = scope.db;
    if (s.error !== null) {
      (cells.error ??= this.statements.cell(db.database, command, 'error', route.route)).value++;
      this.countError(db, s.error.code);
    } else if (s.interrupted) {
      // Cut short by the session's end: its duration says nothing about the statement.
      (cells.interrupted ??= this.statements.cell(db.database, command, 'interrupted', route.route)).value++;
      return;
    } else {
      (cells.ok ??= this.statements.cell(db.database, command, 'ok', route.route)).value++;
    }
    this.statementDuration.observe(duration, s.durationMs / 1000);
  }

  /** The cells of an operation's statements in a route, remembered for the next. */
  private operationCells(db: DatabaseCells, route: RouteCells, operation: string): OperationCells {
    const command = commandLabel(operation);
    let cells = route.statements.get(command);
    if (cells === undefined) {
      cells = { ok: null, error: null, interrupted: null };
      route.statements.set(command, cells);
    }
    let duration = db.statementDuration.get(command);
    if (duration === undefined) {
      duration = this.statementDuration.cell(db.database, command);
      db.statementDuration.set(command, duration);
    }
    const found = { command, cells, duration };
    if (route.operations.size < OPERATIONS_PER_ROUTE) route.operations.set(operation, found);
    return found;
  }

  sessionError(session: SessionInfo, error: ErrorFields): void {
    this.countError(this.scopeOf(session).db, error.code);
  }

  private countError(db: DatabaseCells, code: string): void {
    let cell = db.errors.get(code);
    if (cell === undefined) {
      if (acceptsSqlstate(code, db.errors.size)) {
        cell = this.errors.cell(db.database, code);
        db.errors.set(code, cell);
      } else {
        cell = db.errorsOther ??= this.errors.cell(db.database, OTHER);
      }
    }
    cell.value++;
    if (code === LOCK_NOT_AVAILABLE) db.lockNotAvailable.value++;
    else if (code === SERIALIZATION_FAILURE) db.serializationFailures.value++;
  }

  // ------------------------------------------------------------ transactions

  transactionStarted(session: SessionInfo, tx: TransactionRecord): void {
    const scope = this.scopeOf(session);
    const retry = scope.retry;
    if (retry === null) return;
    scope.retry = null;
    if (retry.requestId !== tx.request.id) return;
    let cell = scope.db.retries.get(retry.sqlstate);
    if (cell === undefined) {
      cell = this.retries.cell(scope.db.database, retry.sqlstate);
      scope.db.retries.set(retry.sqlstate, cell);
    }
    cell.value++;
  }

  transactionEnded(session: SessionInfo, tx: TransactionRecord): void {
    const scope = this.scopeOf(session);
    const route = scope.request === tx.request && scope.route !== null ? scope.route : this.enterRequest(scope, tx.request);
    const outcome = tx.outcome ?? 'disconnect';
    const slot = tx.implicit ? 1 : 0;
    let counts = route.transactions.get(outcome);
    if (counts === undefined) {
      counts = [null, null];
      route.transactions.set(outcome, counts);
    }
    const db = scope.db;
    (counts[slot] ??= this.transactions.cell(db.database, outcome, String(tx.implicit), route.route)).value++;
    const duration = (route.transactionDuration[slot] ??= this.transactionDuration.cell(db.database, String(tx.implicit), route.route));
    this.transactionDuration.observe(duration, tx.durationMs / 1000);
    if (!tx.implicit) this.idleInTransaction.observe(db.idleInTransaction, tx.idleInTransactionMs / 1000);

    const code = tx.firstError?.code;
    const failed = outcome !== 'commit' && outcome !== 'prepared';
    scope.retry = failed && code !== undefined && RETRYABLE.has(code) ? { requestId: tx.request.id, sqlstate: code } : null;
  }

  savepoint(_session: SessionInfo, op: SavepointOp): void {
    this.savepointCells[op].value++;
  }

  // ------------------------------------------------------------ exemplars

  // Called after this listener observed the same record, so the cells exist.

  transactionTraced(session: SessionInfo, tx: TransactionRecord, traceId: string, spanId: string): void {
    const scope = this.scopes.get(session);
    if (scope === undefined) return;
    const route = scope.request === tx.request ? scope.route : scope.db.routes.get(this.routes.label(tx.request.route));
    const cell = route?.transactionDuration[tx.implicit ? 1 : 0];
    if (cell == null) return;
    this.transactionDuration.exemplar(cell, tx.durationMs / 1000, { trace_id: traceId, span_id: spanId }, tx.endedAt);
  }

  statementTraced(session: SessionInfo, s: StatementRecord, traceId: string, spanId: string): void {
    const cell = this.scopes.get(session)?.db.statementDuration.get(commandLabel(s.info.operation));
    if (cell === undefined) return;
    this.statementDuration.exemplar(cell, s.durationMs / 1000, { trace_id: traceId, span_id: spanId }, s.startedAt + s.durationMs);
  }

  // ------------------------------------------------------------ policy

  /** Counts a policy decision; `rule` names come from the configuration, so they are bounded. */
  policyViolation(rule: string, action: PolicyAction): void {
    let byAction = this.policyCells.get(rule);
    if (byAction === undefined) {
      byAction = new Map();
      this.policyCells.set(rule, byAction);
    }
    let cell = byAction.get(action);
    if (cell === undefined) {
      cell = this.policyViolations.cell(rule, action);
      byAction.set(action, cell);
    }
    cell.value++;
  }

  // ------------------------------------------------------------ cells

  private scopeOf(session: SessionInfo): SessionScope {
    let scope = this.scopes.get(session);
    if (scope === undefined) {
      scope = { db: this.databaseCells(session.database), request: null, route: null, retry: null };
      this.scopes.set(session, scope);
    }
    return scope;
  }

  /** Called when a session's request changes (rare): finds the cells of the new request's route. */
  private enterRequest(scope: SessionScope, request: RequestInfo): RouteCells {
    const label = this.routes.label(request.route);
    let route = scope.db.routes.get(label);
    if (route === undefined) {
      route = { route: label, statements: new Map(), transactions: new Map(), transactionDuration: [null, null], operations: new Map() };
      scope.db.routes.set(label, route);
    }
    scope.request = request;
    scope.route = route;
    return route;
  }

  /**
   * Database names come from sessions the server accepted, so they are the
   * server's databases: bounded. The counters every database has start at 0.
   */
  private databaseCells(database: string): DatabaseCells {
    let db = this.databases.get(database);
    if (db === undefined) {
      db = {
        database,
        statementDuration: new Map(),
        errors: new Map(),
        errorsOther: null,
        lockNotAvailable: this.lockNotAvailable.cell(database),
        serializationFailures: this.serializationFailures.cell(database),
        retries: new Map(),
        idleInTransaction: this.idleInTransaction.cell(database),
        routes: new Map(),
      };
      this.databases.set(database, db);
    }
    return db;
  }
}
