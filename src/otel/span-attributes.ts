/**
 * What txproxy's spans say: names, and attributes from OpenTelemetry's
 * database semantic conventions (db.*, server.*, error.type) beside
 * txproxy's own (pg.*, txproxy.*). docs/opentelemetry.md lists them all.
 *
 * SQL text and error messages pass through the trace's TraceText, so a
 * span holds no more of them than a trace record does (`trace.sql`).
 */
import type { Attributes } from '@opentelemetry/api';
import {
  ATTR_DB_NAMESPACE,
  ATTR_DB_OPERATION_NAME,
  ATTR_DB_QUERY_TEXT,
  ATTR_DB_RESPONSE_STATUS_CODE,
  ATTR_DB_SYSTEM_NAME,
  ATTR_ERROR_TYPE,
  ATTR_HTTP_ROUTE,
  ATTR_SERVER_ADDRESS,
  ATTR_SERVER_PORT,
  DB_SYSTEM_NAME_VALUE_POSTGRESQL,
} from '@opentelemetry/semantic-conventions';
import type { TraceText } from '../trace/trace-text.js';
import type { RequestInfo, SessionInfo, StatementRecord, TransactionRecord } from '../tracker/types.js';

/** Not yet stable in the conventions package (incubating), so spelled out. */
const ATTR_DB_RESPONSE_RETURNED_ROWS = 'db.response.returned_rows';

/** Where the upstream server is, for server.address / server.port. */
export interface ServerAddress {
  host: string;
  port: number;
}

/** `SELECT shop`: operation and database, as the conventions name database spans; low cardinality. */
export function statementSpanName(s: StatementRecord, session: SessionInfo): string {
  const operation = s.info.operation === '' ? 'postgresql' : s.info.operation;
  return `${operation} ${session.database}`;
}

export function transactionSpanName(session: SessionInfo): string {
  return `transaction ${session.database}`;
}

function common(session: SessionInfo, server: ServerAddress): Attributes {
  return {
    [ATTR_DB_SYSTEM_NAME]: DB_SYSTEM_NAME_VALUE_POSTGRESQL,
    [ATTR_DB_NAMESPACE]: session.database,
    [ATTR_SERVER_ADDRESS]: server.host,
    [ATTR_SERVER_PORT]: server.port,
  };
}

/**
 * A statement span's attributes. Per statement, so kept to what the
 * conventions ask of a database span and what tells statements apart; the
 * session's own (user, backend pid, ids) are on the transaction span, and
 * values that are usually zero or null are left out when they are.
 */
export function statementAttributes(s: StatementRecord, session: SessionInfo, server: ServerAddress, text: TraceText): Attributes {
  const attributes = common(session, server);
  attributes[ATTR_DB_OPERATION_NAME] = s.info.operation;
  const sql = text.sql(s.text, s.info);
  if (sql !== undefined) attributes[ATTR_DB_QUERY_TEXT] = sql;
  attributes['txproxy.statement.seq'] = s.seq;
  if (s.commandTag !== null) attributes['pg.command_tag'] = s.commandTag;
  if (s.rows !== null) attributes[ATTR_DB_RESPONSE_RETURNED_ROWS] = s.rows;
  if (s.protocol === 'extended') attributes['pg.protocol'] = 'extended';
  if (s.statementName !== null) attributes['pg.statement_name'] = s.statementName;
  if (s.savepointDepth > 0) attributes['pg.savepoint_depth'] = s.savepointDepth;
  if (s.lockWaitMs > 0) attributes['pg.lock_wait_ms'] = round(s.lockWaitMs);
  if (s.error !== null) {
    attributes[ATTR_DB_RESPONSE_STATUS_CODE] = s.error.code;
    attributes[ATTR_ERROR_TYPE] = s.error.code;
  }
  if (s.interrupted) {
    attributes['pg.interrupted'] = true;
    attributes[ATTR_ERROR_TYPE] = 'interrupted';
  }
  if (s.copy !== null) attributes['pg.copy'] = s.copy;
  return attributes;
}

export function transactionAttributes(tx: TransactionRecord, request: RequestInfo, session: SessionInfo, server: ServerAddress): Attributes {
  const attributes = common(session, server);
  attributes['db.user'] = session.user;
  attributes['pg.backend_pid'] = session.backendPid;
  attributes['txproxy.session.id'] = session.id;
  attributes['txproxy.transaction.id'] = tx.id;
  attributes['txproxy.transaction.outcome'] = tx.outcome ?? 'disconnect';
  attributes['txproxy.transaction.implicit'] = tx.implicit;
  attributes['txproxy.transaction.statements'] = tx.statements;
  attributes['txproxy.transaction.writes'] = tx.writes;
  attributes['txproxy.savepoints.created'] = tx.savepointsCreated;
  attributes['txproxy.savepoints.released'] = tx.savepointsReleased;
  attributes['txproxy.savepoints.rolled_back'] = tx.savepointsRolledBack;
  attributes['txproxy.savepoints.max_depth'] = tx.maxSavepointDepth;
  attributes['txproxy.lock_wait_ms'] = round(tx.lockWaitMs);
  attributes['txproxy.idle_in_transaction_ms'] = round(tx.idleInTransactionMs);
  attributes['txproxy.request.id'] = request.id;
  if (request.route !== null) attributes[ATTR_HTTP_ROUTE] = request.route;
  if (tx.firstError !== null) {
    attributes[ATTR_DB_RESPONSE_STATUS_CODE] = tx.firstError.code;
    if (tx.outcome === 'failed') attributes[ATTR_ERROR_TYPE] = tx.firstError.code;
  }
  if (tx.outcome === 'disconnect' || tx.outcome === null) attributes[ATTR_ERROR_TYPE] = 'disconnect';
  return attributes;
}

export function round(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}
