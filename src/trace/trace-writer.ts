/**
 * Writes the trace: one JSON object per line, a `statement` record
 * per statement and a `transaction` record per transaction, plus `session`
 * records at start and end. Field names follow OpenTelemetry's database
 * conventions where one exists (docs/traces.md lists them all).
 */
import { redactSql } from '../sql/redact.js';
import { jsonMs, jsonNullable, jsonString } from './json-text.js';
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

  // Statement and transaction records are written for every transaction:
  // their JSON text is built directly (json-text.ts says why).

  statementFinished(session: SessionInfo, s: StatementRecord): void {
    if (!this.out.active) return;
    const text = this.sql(s.text);
    const fields = sessionFields(session);
    let line =
      `{"kind":"statement","time":"${isoTime(s.startedAt)}","duration_ms":${jsonMs(s.durationMs)}` +
      `${fields.id},"transaction.id":${idJson(s.transactionId)},"statement.seq":${s.seq}` +
      `,"db.system.name":"postgresql"${fields.namespace},"db.operation.name":${jsonString(s.info.operation)}` +
      (text === undefined ? '' : `,"db.query.text":${jsonString(text)}`) +
      `,"pg.command_tag":${jsonNullable(s.commandTag)},"pg.tx_status_before":"${s.txStatusBefore}"` +
      `,"pg.tx_status_after":${s.txStatusAfter === null ? 'null' : `"${s.txStatusAfter}"`},"pg.protocol":"${s.protocol}"` +
      `${fields.pid},"pg.savepoint_depth":${s.savepointDepth}`;
    // Absent means null or zero: records stay small on the hot path.
    if (s.rows !== null) line += `,"db.response.returned_rows":${s.rows}`;
    if (s.statementName !== null) line += `,"pg.statement_name":${jsonString(s.statementName)}`;
    if (s.lockWaitMs > 0) line += `,"pg.lock_wait_ms":${jsonMs(s.lockWaitMs)}`;
    if (s.error !== null) {
      line +=
        `,"db.response.status_code":${jsonString(s.error.code)},"error.message":${jsonString(s.error.message)}` +
        `,"error.severity":${jsonString(s.error.severityV ?? s.error.severity)}`;
    }
    if (s.interrupted) line += ',"pg.interrupted":true';
    if (s.suspended) line += ',"pg.portal_suspended":true';
    if (s.copy !== null) line += `,"pg.copy":"${s.copy}"`;
    this.out.writeLine(line + requestJson(s.request) + '}');
  }

  transactionEnded(session: SessionInfo, t: TransactionRecord): void {
    if (!this.out.active) return;
    const fields = sessionFields(session);
    let line =
      `{"kind":"transaction","time":"${isoTime(t.startedAt)}","end":"${isoTime(t.endedAt)}","duration_ms":${jsonMs(t.durationMs)}` +
      `,"transaction.id":${idJson(t.id)}${fields.id}${fields.namespace}${fields.pid}` +
      `,"outcome":${t.outcome === null ? 'null' : `"${t.outcome}"`},"implicit":${t.implicit ? 'true' : 'false'}` +
      `,"statements":${t.statements},"writes":${t.writes}`;
    // Absent means zero or null, as in statement records.
    if (t.savepointsCreated > 0) {
      line +=
        `,"savepoints.created":${t.savepointsCreated},"savepoints.released":${t.savepointsReleased}` +
        `,"savepoints.rolled_back":${t.savepointsRolledBack},"savepoints.max_depth":${t.maxSavepointDepth}`;
    }
    if (t.idleInTransactionMs > 0) line += `,"idle_in_transaction_ms":${jsonMs(t.idleInTransactionMs)}`;
    if (t.lockWaitMs > 0) line += `,"lock_wait_ms":${jsonMs(t.lockWaitMs)}`;
    if (t.firstError !== null) line += `,"first_error":{"code":${jsonString(t.firstError.code)},"message":${jsonString(t.firstError.message)}}`;
    this.out.writeLine(line + requestJson(t.request) + '}');
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

/**
 * A session's own fields as JSON text, each with a leading comma: made once
 * per session (again if its backend pid changes, e.g. from 0 once known)
 * instead of escaping the same strings for every record.
 */
interface SessionFields {
  pidValue: number;
  id: string;
  namespace: string;
  pid: string;
}

const sessionFragments = new WeakMap<SessionInfo, SessionFields>();

function sessionFields(session: SessionInfo): SessionFields {
  let fields = sessionFragments.get(session);
  if (fields === undefined || fields.pidValue !== session.backendPid) {
    fields = {
      pidValue: session.backendPid,
      id: `,"session.id":${jsonString(session.id)}`,
      namespace: `,"db.namespace":${jsonString(session.database)}`,
      pid: `,"pg.backend_pid":${session.backendPid}`,
    };
    sessionFragments.set(session, fields);
  }
  return fields;
}

/** Session, transaction and request ids are made by txproxy from digits, dots and letters: nothing to escape. */
function idJson(id: string | null): string {
  return id === null ? 'null' : `"${id}"`;
}

/** The request's attribution fields as JSON text (with a leading comma), made once per request. */
const requestFragments = new WeakMap<RequestInfo, string>();

function requestJson(request: RequestInfo): string {
  let fragment = requestFragments.get(request);
  if (fragment === undefined) {
    const fields: Record<string, unknown> = {};
    addRequest(fields, request);
    fragment = ',' + JSON.stringify(fields).slice(1, -1);
    requestFragments.set(request, fragment);
  }
  return fragment;
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
