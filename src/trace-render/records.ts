/**
 * The trace records the renderer reads, decoded from their flat JSON form
 * (docs/traces.md) into typed values. Decoding is lenient about optional
 * fields (older traces, `trace.sql: off`) and strict about the few fields
 * the transcript cannot do without (ids and sequence numbers): a record
 * missing one of those is reported as malformed, never guessed at.
 *
 * Every string is made printable here (printable.ts), once for every field
 * the transcript may show: control characters in a record cannot reach
 * the terminal, whichever field they hide in.
 */
import { printable, printableSql } from './printable.js';

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

export type TraceEvent =
  | SessionEvent
  | StatementEvent
  | TransactionEvent
  | LockWaitEvent
  | DeadlockEvent
  | PolicyEvent
  | DryRunEvent;

/** Records that hang inside a transaction block, at a statement. */
export type NoteEvent = LockWaitEvent | DeadlockEvent | PolicyEvent;

export type Decoded =
  | { ok: true; event: TraceEvent }
  /** A kind this renderer does not know (a newer writer): skipped quietly. */
  | { ok: true; event: null }
  | { ok: false; reason: string };

type Json = Record<string, unknown>;

/** Parses and decodes one NDJSON line (or one SSE data payload). */
export function decodeLine(text: string): Decoded {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    // V8's message quotes the text around the mistake.
    return { ok: false, reason: `not valid JSON (${printable((err as Error).message)})` };
  }
  return decodeRecord(value);
}

export function decodeRecord(value: unknown): Decoded {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return { ok: false, reason: 'not a JSON object' };
  const r = value as Json;
  if (typeof r.kind !== 'string') return { ok: false, reason: 'no "kind" field' };
  try {
    switch (r.kind) {
      case 'session':
        return { ok: true, event: decodeSession(r) };
      case 'statement':
        return { ok: true, event: decodeStatement(r) };
      case 'transaction':
        return { ok: true, event: decodeTransaction(r) };
      case 'lock_wait':
        return { ok: true, event: decodeLockWait(r) };
      case 'deadlock':
        return { ok: true, event: decodeDeadlock(r) };
      case 'policy':
        return { ok: true, event: decodePolicy(r) };
      case 'dry_run':
        return { ok: true, event: decodeDryRun(r) };
      default:
        return { ok: true, event: null };
    }
  } catch (err) {
    if (err instanceof MissingField) return { ok: false, reason: `${r.kind} record ${err.message}` };
    throw err;
  }
}

class MissingField extends Error {}

function required<T>(r: Json, key: string, value: T | null): T {
  if (value === null) throw new MissingField(`without a valid "${key}"`);
  return value;
}

function str(r: Json, key: string): string | null {
  const v = r[key];
  return typeof v === 'string' ? printable(v) : null;
}

/** SQL text: printable, its line breaks kept (the transcript folds them). */
function sql(r: Json, key: string): string | null {
  const v = r[key];
  return typeof v === 'string' ? printableSql(v) : null;
}

function num(r: Json, key: string): number | null {
  const v = r[key];
  return typeof v === 'number' && Number.isFinite(v) ? v : null;
}

function bool(r: Json, key: string): boolean | null {
  const v = r[key];
  return typeof v === 'boolean' ? v : null;
}

function objects(r: Json, key: string): Json[] {
  const v = r[key];
  return Array.isArray(v) ? v.filter((x): x is Json => typeof x === 'object' && x !== null && !Array.isArray(x)) : [];
}

/** `transaction.id` may be null (no transaction) but, when present, must be a string. */
function transactionIdOf(r: Json): string | null {
  const v = r['transaction.id'];
  if (v === undefined || v === null) return null;
  if (typeof v !== 'string') throw new MissingField('with a "transaction.id" that is not a string');
  return printable(v);
}

function attribution(r: Json): Attribution {
  return { requestId: str(r, 'request.id'), route: str(r, 'http.route') };
}

function decodeSession(r: Json): SessionEvent {
  const event = str(r, 'event');
  return {
    kind: 'session',
    event: required(r, 'event', event === 'start' || event === 'end' ? event : null),
    time: str(r, 'time') ?? '',
    sessionId: required(r, 'session.id', str(r, 'session.id')),
    database: str(r, 'db.namespace'),
    user: str(r, 'db.user'),
    clientAddress: str(r, 'client.address'),
    applicationName: str(r, 'application.name'),
    backendPid: num(r, 'pg.backend_pid'),
    durationMs: num(r, 'duration_ms'),
    clean: bool(r, 'clean'),
  };
}

function decodeStatement(r: Json): StatementEvent {
  return {
    kind: 'statement',
    time: str(r, 'time') ?? '',
    sessionId: required(r, 'session.id', str(r, 'session.id')),
    transactionId: transactionIdOf(r),
    seq: required(r, 'statement.seq', num(r, 'statement.seq')),
    durationMs: num(r, 'duration_ms') ?? 0,
    operation: str(r, 'db.operation.name') ?? '',
    text: sql(r, 'db.query.text'),
    sqlstate: str(r, 'db.response.status_code'),
    errorMessage: str(r, 'error.message'),
    rows: num(r, 'db.response.returned_rows'),
    commandTag: str(r, 'pg.command_tag'),
    savepointDepth: num(r, 'pg.savepoint_depth') ?? 0,
    lockWaitMs: num(r, 'pg.lock_wait_ms') ?? 0,
    backendPid: num(r, 'pg.backend_pid'),
    interrupted: r['pg.interrupted'] === true,
    suspended: r['pg.portal_suspended'] === true,
    copy: str(r, 'pg.copy'),
    origin: str(r, 'txproxy.origin'),
    clientText: str(r, 'txproxy.client_text'),
    ...attribution(r),
  };
}

function decodeTransaction(r: Json): TransactionEvent {
  const firstError = r.first_error;
  const error =
    typeof firstError === 'object' && firstError !== null
      ? { code: str(firstError as Json, 'code') ?? '', message: str(firstError as Json, 'message') ?? '' }
      : null;
  return {
    kind: 'transaction',
    time: str(r, 'time') ?? '',
    end: str(r, 'end'),
    sessionId: required(r, 'session.id', str(r, 'session.id')),
    transactionId: required(r, 'transaction.id', str(r, 'transaction.id')),
    database: str(r, 'db.namespace'),
    backendPid: num(r, 'pg.backend_pid'),
    durationMs: num(r, 'duration_ms') ?? 0,
    outcome: str(r, 'outcome'),
    implicit: bool(r, 'implicit') ?? false,
    statements: num(r, 'statements') ?? 0,
    writes: num(r, 'writes') ?? 0,
    savepointsCreated: num(r, 'savepoints.created') ?? 0,
    savepointsRolledBack: num(r, 'savepoints.rolled_back') ?? 0,
    idleInTransactionMs: num(r, 'idle_in_transaction_ms') ?? 0,
    lockWaitMs: num(r, 'lock_wait_ms') ?? 0,
    firstError: error,
    statementsDropped: num(r, 'statements_dropped') ?? 0,
    ...attribution(r),
  };
}

function decodeBlocker(b: Json): Blocker {
  const statements = Array.isArray(b.statements)
    ? objects(b, 'statements').map((s) => ({ seq: num(s, 'seq') ?? 0, text: sql(s, 'text') ?? '' }))
    : null;
  return {
    pid: num(b, 'pg.backend_pid'),
    sessionId: str(b, 'session.id'),
    transactionId: str(b, 'transaction.id'),
    route: str(b, 'http.route'),
    statements,
    applicationName: str(b, 'application.name'),
    state: str(b, 'state'),
    query: sql(b, 'query'),
  };
}

function decodeLockWait(r: Json): LockWaitEvent {
  return {
    kind: 'lock_wait',
    time: str(r, 'time') ?? '',
    end: str(r, 'end'),
    durationMs: num(r, 'duration_ms') ?? 0,
    sessionId: required(r, 'session.id', str(r, 'session.id')),
    transactionId: transactionIdOf(r),
    seq: num(r, 'statement.seq'),
    backendPid: num(r, 'pg.backend_pid'),
    text: sql(r, 'db.query.text'),
    lockType: str(r, 'lock.type'),
    lockMode: str(r, 'lock.mode'),
    relation: str(r, 'lock.relation'),
    blockedBy: objects(r, 'blocked_by').map(decodeBlocker),
    ...attribution(r),
  };
}

function decodeDeadlock(r: Json): DeadlockEvent {
  return {
    kind: 'deadlock',
    time: str(r, 'time') ?? '',
    sessionId: required(r, 'session.id', str(r, 'session.id')),
    transactionId: transactionIdOf(r),
    backendPid: num(r, 'pg.backend_pid'),
    processes: objects(r, 'processes').map((p) => ({
      pid: num(p, 'pg.backend_pid'),
      waitsFor: str(p, 'waits_for'),
      blockedByPid: num(p, 'blocked_by_pid'),
      sessionId: str(p, 'session.id'),
      transactionId: str(p, 'transaction.id'),
      route: str(p, 'http.route'),
      lastStatement: sql(p, 'last_statement'),
      victim: p.victim === true,
    })),
    ...attribution(r),
  };
}

function decodePolicy(r: Json): PolicyEvent {
  return {
    kind: 'policy',
    time: str(r, 'time') ?? '',
    sessionId: required(r, 'session.id', str(r, 'session.id')),
    transactionId: transactionIdOf(r),
    rule: required(r, 'rule', str(r, 'rule')),
    mode: str(r, 'mode'),
    action: str(r, 'action'),
    decision: required(r, 'decision', str(r, 'decision')),
    sqlstate: str(r, 'sqlstate'),
    message: str(r, 'message') ?? '',
    text: sql(r, 'db.query.text'),
    ...attribution(r),
  };
}

function decodeDryRun(r: Json): DryRunEvent {
  return {
    kind: 'dry_run',
    time: str(r, 'time') ?? '',
    sessionId: required(r, 'session.id', str(r, 'session.id')),
    changes: objects(r, 'changes').map((c) => ({ command: str(c, 'command') ?? '?', rows: num(c, 'rows'), statement: sql(c, 'statement') })),
    rowsTotal: num(r, 'rows_total'),
    rolledBack: r.rolled_back !== false,
    ...attribution(r),
  };
}
