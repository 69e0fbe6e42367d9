/**
 * Writes the trace: one JSON object per line, a `statement` record
 * per statement and a `transaction` record per transaction, plus `session`
 * records at start and end. Field names follow OpenTelemetry's database
 * conventions where one exists (docs/traces.md lists them all).
 */
import { redactSql } from '../sql/redact.js';
import type { TraceBus } from './trace-sink.js';
import type { RequestInfo, SessionInfo, StatementRecord, TrackerListener, TransactionRecord } from '../tracker/types.js';

export type SqlTraceMode = 'full' | 'redacted' | 'off';

export class TraceWriter implements TrackerListener {
  constructor(
    private readonly out: TraceBus,
    private readonly sqlMode: SqlTraceMode,
  ) {}

  sessionStarted(session: SessionInfo): void {
    if (!this.out.active) return;
    this.out.write({
      kind: 'session',
      event: 'start',
      time: new Date(session.startedAt).toISOString(),
      'session.id': session.id,
      'db.namespace': session.database,
      'db.user': session.user,
      'client.address': session.clientAddress,
      'application.name': session.applicationName,
      'pg.backend_pid': session.backendPid,
    });
  }

  sessionEnded(session: SessionInfo, clean: boolean): void {
    if (!this.out.active) return;
    this.out.write({
      kind: 'session',
      event: 'end',
      time: new Date().toISOString(),
      'session.id': session.id,
      'db.namespace': session.database,
      duration_ms: round(Date.now() - session.startedAt),
      clean,
    });
  }

  statementFinished(session: SessionInfo, s: StatementRecord): void {
    if (!this.out.active) return;
    const record: Record<string, unknown> = {
      kind: 'statement',
      time: new Date(s.startedAt).toISOString(),
      duration_ms: round(s.durationMs),
      'session.id': s.sessionId,
      'transaction.id': s.transactionId,
      'statement.seq': s.seq,
      'db.system.name': 'postgresql',
      'db.namespace': session.database,
      'db.operation.name': s.info.operation,
      'db.query.text': this.sql(s.text),
      'db.response.status_code': s.error?.code ?? null,
      'db.response.returned_rows': s.rows,
      'pg.command_tag': s.commandTag,
      'pg.tx_status_before': s.txStatusBefore,
      'pg.tx_status_after': s.txStatusAfter,
      'pg.protocol': s.protocol,
      'pg.statement_name': s.statementName,
      'pg.backend_pid': session.backendPid,
      'pg.savepoint_depth': s.savepointDepth,
      'pg.lock_wait_ms': round(s.lockWaitMs),
    };
    if (s.error !== null) {
      record['error.message'] = s.error.message;
      record['error.severity'] = s.error.severityV ?? s.error.severity;
    }
    if (s.interrupted) record['pg.interrupted'] = true;
    if (s.suspended) record['pg.portal_suspended'] = true;
    if (s.copy !== null) record['pg.copy'] = s.copy;
    addRequest(record, s.request);
    this.out.write(record);
  }

  transactionEnded(session: SessionInfo, t: TransactionRecord): void {
    if (!this.out.active) return;
    const record: Record<string, unknown> = {
      kind: 'transaction',
      time: new Date(t.startedAt).toISOString(),
      end: new Date(t.endedAt).toISOString(),
      duration_ms: round(t.durationMs),
      'transaction.id': t.id,
      'session.id': t.sessionId,
      'db.namespace': session.database,
      'pg.backend_pid': session.backendPid,
      outcome: t.outcome,
      implicit: t.implicit,
      statements: t.statements,
      writes: t.writes,
      'savepoints.created': t.savepointsCreated,
      'savepoints.released': t.savepointsReleased,
      'savepoints.rolled_back': t.savepointsRolledBack,
      'savepoints.max_depth': t.maxSavepointDepth,
      idle_in_transaction_ms: round(t.idleInTransactionMs),
      lock_wait_ms: round(t.lockWaitMs),
      first_error: t.firstError,
    };
    addRequest(record, t.request);
    this.out.write(record);
  }

  private sql(text: string): string | undefined {
    if (this.sqlMode === 'full') return text;
    if (this.sqlMode === 'redacted') return redactSql(text);
    return undefined;
  }
}

/** Request attribution: the request id always, sqlcommenter fields when tagged. */
export function addRequest(record: Record<string, unknown>, request: RequestInfo): void {
  record['request.id'] = request.id;
  if (request.tags === null) return;
  if (request.traceId !== null) record.trace_id = request.traceId;
  if (request.route !== null) record['http.route'] = request.route;
  if (request.controller !== null) record.controller = request.controller;
  if (request.action !== null) record.action = request.action;
  if (request.application !== null) record.application = request.application;
  record.sqlcommenter = request.tags;
}

function round(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}
