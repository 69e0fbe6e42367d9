/**
 * The trace records the renderer reads, as typed values (docs/traces.md
 * names their flat JSON fields; records.ts decodes them). Strings in them
 * are printable already: decoding made them so.
 */

export interface SessionEvent {
  kind: 'session';
  event: 'start' | 'end';
  time: string;
  sessionId: string;
  database: string | null;
  user: string | null;
  clientAddress: string | null;
  applicationName: string | null;
  backendPid: number | null;
  durationMs: number | null;
  clean: boolean | null;
}

/** Request attribution carried by statements, transactions and the newer kinds. */
export interface Attribution {
  requestId: string | null;
  route: string | null;
}

export interface StatementEvent extends Attribution {
  kind: 'statement';
  time: string;
  sessionId: string;
  transactionId: string | null;
  seq: number;
  durationMs: number;
  operation: string;
  /** Absent when the trace was written with `trace.sql: off`. */
  text: string | null;
  sqlstate: string | null;
  errorMessage: string | null;
  rows: number | null;
  commandTag: string | null;
  /** Savepoints open once the statement finished. */
  savepointDepth: number;
  lockWaitMs: number;
  backendPid: number | null;
  interrupted: boolean;
  suspended: boolean;
  copy: string | null;
  /** `proxy`: txproxy sent it on its own; `rewritten`: in place of the client's `clientText`. Null: the client's. */
  origin: string | null;
  clientText: string | null;
}

export interface TransactionEvent extends Attribution {
  kind: 'transaction';
  time: string;
  end: string | null;
  sessionId: string;
  transactionId: string;
  database: string | null;
  backendPid: number | null;
  durationMs: number;
  /** commit | rollback | failed | disconnect | prepared (null when the writer could not tell). */
  outcome: string | null;
  implicit: boolean;
  statements: number;
  writes: number;
  savepointsCreated: number;
  savepointsRolledBack: number;
  idleInTransactionMs: number;
  lockWaitMs: number;
  firstError: { code: string; message: string } | null;
  /** Statement records tail sampling left out (`statements_dropped`): it held too many to decide on. */
  statementsDropped: number;
}

export interface Blocker {
  pid: number | null;
  sessionId: string | null;
  transactionId: string | null;
  route: string | null;
  /** For txproxy sessions: what the blocking transaction ran so far. */
  statements: { seq: number; text: string }[] | null;
  /** For blockers outside txproxy (from pg_stat_activity). */
  applicationName: string | null;
  state: string | null;
  query: string | null;
}

export interface LockWaitEvent extends Attribution {
  kind: 'lock_wait';
  time: string;
  end: string | null;
  durationMs: number;
  sessionId: string;
  transactionId: string | null;
  seq: number | null;
  backendPid: number | null;
  text: string | null;
  lockType: string | null;
  lockMode: string | null;
  relation: string | null;
  blockedBy: Blocker[];
}

export interface DeadlockProcess {
  pid: number | null;
  waitsFor: string | null;
  blockedByPid: number | null;
  sessionId: string | null;
  transactionId: string | null;
  route: string | null;
  lastStatement: string | null;
  victim: boolean;
}

export interface DeadlockEvent extends Attribution {
  kind: 'deadlock';
  time: string;
  sessionId: string;
  transactionId: string | null;
  backendPid: number | null;
  processes: DeadlockProcess[];
}

export interface PolicyEvent extends Attribution {
  kind: 'policy';
  time: string;
  sessionId: string;
  transactionId: string | null;
  rule: string;
  mode: string | null;
  action: string | null;
  decision: string;
  sqlstate: string | null;
  message: string;
  text: string | null;
}

export interface DryRunChange {
  command: string;
  rows: number | null;
  statement: string | null;
}

export interface DryRunEvent extends Attribution {
  kind: 'dry_run';
  time: string;
  sessionId: string;
  changes: DryRunChange[];
  rowsTotal: number | null;
  rolledBack: boolean;
}

/**
 * Transaction pooling: the session is now held on its server connection
 * (`pin`) for these reasons, or no longer held for them (`unpin`).
 */
export interface PinEvent {
  kind: 'pin' | 'unpin';
  time: string;
  sessionId: string;
  database: string | null;
  backendPid: number | null;
  /** listen, advisory_lock, temp_table, hold_cursor, sql_prepare, role, load, unknown (or newer ones). */
  reasons: string[];
}

export type TraceEvent =
  | SessionEvent
  | StatementEvent
  | TransactionEvent
  | LockWaitEvent
  | DeadlockEvent
  | PolicyEvent
  | DryRunEvent
  | PinEvent;

/** Records that hang inside a transaction block, at a statement. */
export type NoteEvent = LockWaitEvent | DeadlockEvent | PolicyEvent;
