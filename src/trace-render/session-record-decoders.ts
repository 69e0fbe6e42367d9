/** Decoders of the records of a session's own activity: session, statement, transaction. */
import { attribution, bool, num, required, sessionIdOf, sql, str, timeOf, transactionIdOf, type Json } from './record-fields.js';
import type { SessionEvent, StatementEvent, TransactionEvent } from './record-types.js';

export function decodeSession(r: Json): SessionEvent {
  const event = str(r, 'event');
  return {
    kind: 'session',
    event: required(r, 'event', event === 'start' || event === 'end' ? event : null),
    time: timeOf(r),
    sessionId: sessionIdOf(r),
    database: str(r, 'db.namespace'),
    user: str(r, 'db.user'),
    clientAddress: str(r, 'client.address'),
    applicationName: str(r, 'application.name'),
    backendPid: num(r, 'pg.backend_pid'),
    durationMs: num(r, 'duration_ms'),
    clean: bool(r, 'clean'),
  };
}

export function decodeStatement(r: Json): StatementEvent {
  return {
    kind: 'statement',
    time: timeOf(r),
    sessionId: sessionIdOf(r),
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

export function decodeTransaction(r: Json): TransactionEvent {
  const firstError = r.first_error;
  const error =
    typeof firstError === 'object' && firstError !== null
      ? { code: str(firstError as Json, 'code') ?? '', message: str(firstError as Json, 'message') ?? '' }
      : null;
  return {
    kind: 'transaction',
    time: timeOf(r),
    end: str(r, 'end'),
    sessionId: sessionIdOf(r),
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
