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
      time: isoTime(session.startedAt),
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
      time: isoTime(Date.now()),
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
      time: isoTime(s.startedAt),
      duration_ms: round(s.durationMs),
      'session.id': s.sessionId,
      'transaction.id': s.transactionId,
      'statement.seq': s.seq,
      'db.system.name': 'postgresql',
      'db.namespace': session.database,
      'db.operation.name': s.info.operation,
      'db.query.text': this.sql(s.text),
      'pg.command_tag': s.commandTag,
      'pg.tx_status_before': s.txStatusBefore,
      'pg.tx_status_after': s.txStatusAfter,
      'pg.protocol': s.protocol,
      'pg.backend_pid': session.backendPid,
      'pg.savepoint_depth': s.savepointDepth,
    };
    // Absent means null or zero: records stay small on the hot path.
    if (s.rows !== null) record['db.response.returned_rows'] = s.rows;
    if (s.statementName !== null) record['pg.statement_name'] = s.statementName;
    if (s.lockWaitMs > 0) record['pg.lock_wait_ms'] = round(s.lockWaitMs);
    if (s.error !== null) {
      record['db.response.status_code'] = s.error.code;
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
      time: isoTime(t.startedAt),
      end: isoTime(t.endedAt),
      duration_ms: round(t.durationMs),
      'transaction.id': t.id,
      'session.id': t.sessionId,
      'db.namespace': session.database,
      'pg.backend_pid': session.backendPid,
      outcome: t.outcome,
      implicit: t.implicit,
      statements: t.statements,
      writes: t.writes,
    };
    // Absent means zero or null, as in statement records.
    if (t.savepointsCreated > 0) {
      record['savepoints.created'] = t.savepointsCreated;
      record['savepoints.released'] = t.savepointsReleased;
      record['savepoints.rolled_back'] = t.savepointsRolledBack;
      record['savepoints.max_depth'] = t.maxSavepointDepth;
    }
    if (t.idleInTransactionMs > 0) record.idle_in_transaction_ms = round(t.idleInTransactionMs);
    if (t.lockWaitMs > 0) record.lock_wait_ms = round(t.lockWaitMs);
    if (t.firstError !== null) record.first_error = t.firstError;
    addRequest(record, t.request);
    this.out.write(record);
  }

  private sql(text: string): string | undefined {
    return traceSql(this.sqlMode, text);
  }
}

/** SQL text as the `trace.sql` setting allows it in a record: whole, redacted, or left out. */
export function traceSql(mode: SqlTraceMode, text: string): string | undefined {
  if (mode === 'full') return text;
  if (mode === 'redacted') return redactSql(text);
  return undefined;
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

let lastMs = -1;
let lastIso = '';

/** ISO 8601 of an epoch-ms time; thousands of records share a millisecond, so the last one is kept. */
export function isoTime(ms: number): string {
  if (ms !== lastMs) {
    lastMs = ms;
    lastIso = new Date(ms).toISOString();
  }
  return lastIso;
}

function round(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}
