/**
 * Writes the trace: one JSON object per line, a `statement` record
 * per statement and a `transaction` record per transaction, plus `session`
 * records at start and end. Field names follow OpenTelemetry's database
 * conventions where one exists (docs/traces.md lists them all).
 */
import { jsonMs, jsonNullable, jsonString } from './json-text.js';
import type { TraceText } from './trace-text.js';
import type { RecordText } from './tail-sampler.js';
import type { TraceBus } from './trace-sink.js';
import type { SessionInfo, StatementRecord, TrackerListener, TransactionRecord } from '../tracker/types.js';

export class TraceWriter implements TrackerListener, RecordText {
  /**
   * A session's last error message that the trace text redacted for its
   * statement's sake (a password statement's, in full mode): its
   * transaction's first_error, written next, is the same message.
   */
  private readonly redactedErrors = new WeakMap<SessionInfo, { message: string; shown: string }>();

  constructor(
    private readonly out: TraceBus,
    private readonly text: TraceText,
  ) {}

  sessionStarted(session: SessionInfo): void {
    this.out.sessionStarted(session.id);
    if (!this.out.writesTranscript) return;
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

  sessionEnded(session: SessionInfo, clean: boolean, durationMs: number): void {
    // First: a transaction still held is decided before the session's end is written.
    this.out.sessionEnded(session.id);
    if (!this.out.writesTranscript) return;
    this.out.write({
      kind: 'session',
      event: 'end',
      time: isoTime(Date.now()),
      'session.id': session.id,
      'db.namespace': session.database,
      duration_ms: round(durationMs),
      clean,
    });
  }

  // Statement and transaction records are written for every transaction:
  // their JSON text is built directly (json-text.ts says why). The bus asks
  // for it (statementLine, transactionLine): at once, or with tail sampling
  // only for the transactions it keeps.

  statementFinished(session: SessionInfo, s: StatementRecord): void {
    if (this.out.writesTranscript) this.out.writeStatement(session, s, this);
  }

  transactionEnded(session: SessionInfo, t: TransactionRecord): void {
    if (this.out.writesTranscript) this.out.writeTransaction(session, t, this);
  }

  statementLine(session: SessionInfo, s: StatementRecord): string {
    const text = this.text.sql(s.text, s.info);
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
      const message = this.text.errorMessage(s.error.message, s.text);
      if (message !== s.error.message) this.redactedErrors.set(session, { message: s.error.message, shown: message });
      line +=
        `,"db.response.status_code":${jsonString(s.error.code)},"error.message":${jsonString(message)}` +
        `,"error.severity":${jsonString(s.error.severityV ?? s.error.severity)}`;
    }
    if (s.interrupted) line += ',"pg.interrupted":true';
    if (s.suspended) line += ',"pg.portal_suspended":true';
    if (s.copy !== null) line += `,"pg.copy":"${s.copy}"`;
    if (s.origin !== undefined) line += this.originJson(s);
    return line + this.text.requestJson(s.request) + '}';
  }

  transactionLine(session: SessionInfo, t: TransactionRecord): string {
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
    if (t.firstError !== null) line += `,"first_error":{"code":${jsonString(t.firstError.code)},"message":${jsonString(this.firstErrorMessage(session, t.firstError.message))}}`;
    return line + this.text.requestJson(t.request) + '}';
  }

  /** A policy's statement: who sent it, and the client's statement it stands for. */
  private originJson(s: StatementRecord): string {
    let json = `,"txproxy.origin":"${s.origin}"`;
    const client = s.clientText !== undefined ? this.text.sql(s.clientText) : undefined;
    if (client !== undefined) json += `,"txproxy.client_text":${jsonString(client)}`;
    return json;
  }

  private firstErrorMessage(session: SessionInfo, message: string): string {
    const redacted = this.redactedErrors.get(session);
    return redacted !== undefined && redacted.message === message ? redacted.shown : this.text.errorMessage(message);
  }
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

/** Session, transaction and request ids are made by txproxy from letters, digits, dots and hyphens: nothing to escape. */
function idJson(id: string | null): string {
  return id === null ? 'null' : `"${id}"`;
}

let lastSecond = NaN;
/** `YYYY-MM-DDTHH:MM:SS.` of lastSecond. */
let secondPrefix = '';
/** The millisecond and zone ending an ISO time, `000Z` to `999Z`. */
const MILLISECOND_SUFFIXES = Array.from({ length: 1000 }, (_, ms) => `${String(ms).padStart(3, '0')}Z`);

/**
 * ISO 8601 of an epoch-ms time, as Date.toISOString() writes it. Records
 * come thousands a second: the date and time of day are made once a
 * second, and only the milliseconds per record (a Date for each cost more
 * than the rest of a statement's line).
 */
export function isoTime(ms: number): string {
  const second = Math.floor(ms / 1000);
  const millisecond = ms - second * 1000;
  // Whole milliseconds, as every time here is; another would need the Date's own rounding.
  if (!Number.isInteger(millisecond)) return new Date(ms).toISOString();
  if (second !== lastSecond) {
    const iso = new Date(second * 1000).toISOString();
    // Years beyond 9999 have a longer form: keep to the Date's.
    if (iso.length !== 24) return new Date(ms).toISOString();
    lastSecond = second;
    secondPrefix = iso.slice(0, 20);
  }
  return secondPrefix + MILLISECOND_SUFFIXES[millisecond];
}

function round(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}
