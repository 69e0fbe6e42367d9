/**
 * Writes the trace: one JSON object per line, a `statement` record
 * per statement and a `transaction` record per transaction, plus `session`
 * records at start and end. Field names follow OpenTelemetry's database
 * conventions where one exists (docs/traces.md lists them all).
 */
import { asciiBytes, JsonPieces, RECORD_SLACK, ScratchLine, utf8Bytes, worstCase, type JsonBytes, type LineWriter } from './json-bytes.js';
import { jsonString } from './json-text.js';
import type { TraceText } from './trace-text.js';
import type { RecordEncoder, TraceBus } from './trace-sink.js';
import { TrackedStatement } from '../tracker/statement-record.js';
import type { SessionInfo, StatementRecord, TrackerListener, TransactionRecord } from '../tracker/types.js';

export class TraceWriter implements TrackerListener, RecordEncoder {
  /**
   * A session's last error message that the trace text redacted for its
   * statement's sake (a password statement's, in full mode): its
   * transaction's first_error, written next, is the same message.
   */
  private readonly redactedErrors = new WeakMap<SessionInfo, { message: string; shown: string }>();
  /** Where statementLine and transactionLine encode their record before it becomes a string. */
  private readonly scratch = new ScratchLine();

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
  // their JSON is encoded piece by piece (json-bytes.ts says why), into the
  // trace file's buffer or, for a string, into the scratch line. The bus
  // asks for it: at once, or with tail sampling only for the transactions
  // it keeps.

  statementFinished(session: SessionInfo, s: StatementRecord): void {
    if (this.out.writesTranscript) this.out.writeStatement(session, s, this);
  }

  transactionEnded(session: SessionInfo, t: TransactionRecord): void {
    if (this.out.writesTranscript) this.out.writeTransaction(session, t, this);
  }

  statementLine(session: SessionInfo, s: StatementRecord): string {
    this.encodeStatement(this.scratch, session, s);
    return this.scratch.text();
  }

  transactionLine(session: SessionInfo, t: TransactionRecord): string {
    this.encodeTransaction(this.scratch, session, t);
    return this.scratch.text();
  }

  encodeStatement(out: LineWriter, session: SessionInfo, s: StatementRecord): void {
    // First: reading an error's statement text makes it.
    let message: string | null = null;
    if (s.error !== null) {
      message = this.text.errorMessage(s.error.message, s.text);
      if (message !== s.error.message) this.redactedErrors.set(session, { message: s.error.message, shown: message });
    }
    // A statement of a shaped Query (nearly every one, under load) whose text is
    // shown as sent: its text is written from the shape's bytes, never made.
    const unmade = s instanceof TrackedStatement && s.textWritable && this.text.showsAsSent(s.info, s.textLength) ? s : null;
    const text = unmade === null ? this.text.sql(s.text, s.info) : undefined;
    const fields = sessionFields(session);
    const request = this.text.requestBytes(s.request);
    const client = s.origin !== undefined && s.clientText !== undefined ? this.text.sql(s.clientText) : undefined;
    const w = out.beginLine(
      RECORD_SLACK +
        fields.bytes +
        request.length +
        worstCase(s.info.operation) +
        (unmade === null ? worstCase(text) : unmade.textLength + 2) +
        worstCase(s.commandTag) +
        worstCase(s.statementName) +
        (s.error === null ? 0 : worstCase(s.error.code) + worstCase(message) + worstCase(s.error.severityV ?? s.error.severity)) +
        worstCase(client),
    );
    if (w === null) return;
    w.piece(P, STATEMENT_START);
    writeIsoTime(w, s.startedAt);
    w.piece(P, DURATION);
    w.ms(s.durationMs);
    w.bytes(fields.id);
    w.piece(P, TRANSACTION_ID);
    w.nullableAscii(s.transactionId);
    w.piece(P, STATEMENT_SEQ);
    w.int(s.seq);
    w.piece(P, SYSTEM_NAME);
    w.bytes(fields.namespace);
    w.piece(P, OPERATION_NAME);
    w.string(s.info.operation);
    if (unmade !== null) {
      w.piece(P, QUERY_TEXT);
      w.byte(QUOTE);
      w.pos = unmade.writeText(w.buf, w.pos);
      w.byte(QUOTE);
    } else if (text !== undefined) {
      w.piece(P, QUERY_TEXT);
      w.string(text);
    }
    w.piece(P, COMMAND_TAG);
    w.nullable(s.commandTag);
    w.piece(P, TX_STATUS_BEFORE);
    w.quotedAscii(s.txStatusBefore);
    w.piece(P, TX_STATUS_AFTER);
    w.nullableAscii(s.txStatusAfter);
    w.piece(P, PROTOCOL);
    w.quotedAscii(s.protocol);
    w.bytes(fields.pid);
    w.piece(P, SAVEPOINT_DEPTH);
    w.int(s.savepointDepth);
    // Absent means null or zero: records stay small on the hot path.
    if (s.rows !== null) {
      w.piece(P, RETURNED_ROWS);
      w.int(s.rows);
    }
    if (s.statementName !== null) {
      w.piece(P, STATEMENT_NAME);
      w.string(s.statementName);
    }
    if (s.lockWaitMs > 0) {
      w.piece(P, STATEMENT_LOCK_WAIT);
      w.ms(s.lockWaitMs);
    }
    if (s.error !== null) {
      w.piece(P, STATUS_CODE);
      w.string(s.error.code);
      w.piece(P, ERROR_MESSAGE);
      w.string(message as string);
      w.piece(P, ERROR_SEVERITY);
      w.string(s.error.severityV ?? s.error.severity);
    }
    if (s.interrupted) w.piece(P, INTERRUPTED);
    if (s.suspended) w.piece(P, PORTAL_SUSPENDED);
    if (s.copy !== null) {
      w.piece(P, COPY);
      w.quotedAscii(s.copy);
    }
    // A policy's statement: who sent it, and the client's statement it stands for.
    if (s.origin !== undefined) {
      w.piece(P, ORIGIN);
      w.quotedAscii(s.origin);
      if (client !== undefined) {
        w.piece(P, CLIENT_TEXT);
        w.string(client);
      }
    }
    w.bytes(request);
    w.byte(CLOSE);
    out.endLine();
  }

  encodeTransaction(out: LineWriter, session: SessionInfo, t: TransactionRecord): void {
    const fields = sessionFields(session);
    const request = this.text.requestBytes(t.request);
    const error = t.firstError === null ? null : { code: t.firstError.code, message: this.firstErrorMessage(session, t.firstError.message) };
    const w = out.beginLine(RECORD_SLACK + fields.bytes + request.length + (error === null ? 0 : worstCase(error.code) + worstCase(error.message)));
    if (w === null) return;
    w.piece(P, TRANSACTION_START);
    writeIsoTime(w, t.startedAt);
    w.piece(P, END);
    writeIsoTime(w, t.endedAt);
    w.piece(P, DURATION);
    w.ms(t.durationMs);
    w.piece(P, TRANSACTION_ID);
    w.quotedAscii(t.id);
    w.bytes(fields.id);
    w.bytes(fields.namespace);
    w.bytes(fields.pid);
    w.piece(P, OUTCOME);
    w.nullableAscii(t.outcome);
    w.piece(P, t.implicit ? IMPLICIT_TRUE : IMPLICIT_FALSE);
    w.piece(P, STATEMENTS);
    w.int(t.statements);
    w.piece(P, WRITES);
    w.int(t.writes);
    // Absent means zero or null, as in statement records.
    if (t.savepointsCreated > 0) {
      w.piece(P, SAVEPOINTS_CREATED);
      w.int(t.savepointsCreated);
      w.piece(P, SAVEPOINTS_RELEASED);
      w.int(t.savepointsReleased);
      w.piece(P, SAVEPOINTS_ROLLED_BACK);
      w.int(t.savepointsRolledBack);
      w.piece(P, SAVEPOINTS_MAX_DEPTH);
      w.int(t.maxSavepointDepth);
    }
    if (t.idleInTransactionMs > 0) {
      w.piece(P, IDLE_IN_TRANSACTION);
      w.ms(t.idleInTransactionMs);
    }
    if (t.lockWaitMs > 0) {
      w.piece(P, TRANSACTION_LOCK_WAIT);
      w.ms(t.lockWaitMs);
    }
    if (error !== null) {
      w.piece(P, FIRST_ERROR_CODE);
      w.string(error.code);
      w.piece(P, FIRST_ERROR_MESSAGE);
      w.string(error.message);
      w.byte(CLOSE);
    }
    w.bytes(request);
    w.byte(CLOSE);
    out.endLine();
  }

  private firstErrorMessage(session: SessionInfo, message: string): string {
    const redacted = this.redactedErrors.get(session);
    return redacted !== undefined && redacted.message === message ? redacted.shown : this.text.errorMessage(message);
  }
}

/**
 * A session's own fields as JSON bytes, each with a leading comma: made
 * once per session (again if its backend pid changes, e.g. from 0 once
 * known) instead of escaping the same strings for every record.
 */
interface SessionFields {
  pidValue: number;
  id: Uint8Array;
  namespace: Uint8Array;
  pid: Uint8Array;
  /** The three's length in bytes. */
  bytes: number;
}

const sessionFragments = new WeakMap<SessionInfo, SessionFields>();

function sessionFields(session: SessionInfo): SessionFields {
  let fields = sessionFragments.get(session);
  if (fields === undefined || fields.pidValue !== session.backendPid) {
    const id = utf8Bytes(`,"session.id":${jsonString(session.id)}`);
    const namespace = utf8Bytes(`,"db.namespace":${jsonString(session.database)}`);
    const pid = asciiBytes(`,"pg.backend_pid":${session.backendPid}`);
    fields = { pidValue: session.backendPid, id, namespace, pid, bytes: id.length + namespace.length + pid.length };
    sessionFragments.set(session, fields);
  }
  return fields;
}

// The records' constant pieces, in the order they are written.
const PIECES = new JsonPieces(1024);
const P = PIECES.bytes;
const STATEMENT_START = PIECES.add('{"kind":"statement","time":"');
const TRANSACTION_START = PIECES.add('{"kind":"transaction","time":"');
const END = PIECES.add('","end":"');
const DURATION = PIECES.add('","duration_ms":');
const TRANSACTION_ID = PIECES.add(',"transaction.id":');
const STATEMENT_SEQ = PIECES.add(',"statement.seq":');
const SYSTEM_NAME = PIECES.add(',"db.system.name":"postgresql"');
const OPERATION_NAME = PIECES.add(',"db.operation.name":');
const QUERY_TEXT = PIECES.add(',"db.query.text":');
const COMMAND_TAG = PIECES.add(',"pg.command_tag":');
const TX_STATUS_BEFORE = PIECES.add(',"pg.tx_status_before":');
const TX_STATUS_AFTER = PIECES.add(',"pg.tx_status_after":');
const PROTOCOL = PIECES.add(',"pg.protocol":');
const SAVEPOINT_DEPTH = PIECES.add(',"pg.savepoint_depth":');
const RETURNED_ROWS = PIECES.add(',"db.response.returned_rows":');
const STATEMENT_NAME = PIECES.add(',"pg.statement_name":');
const STATEMENT_LOCK_WAIT = PIECES.add(',"pg.lock_wait_ms":');
const STATUS_CODE = PIECES.add(',"db.response.status_code":');
const ERROR_MESSAGE = PIECES.add(',"error.message":');
const ERROR_SEVERITY = PIECES.add(',"error.severity":');
const INTERRUPTED = PIECES.add(',"pg.interrupted":true');
const PORTAL_SUSPENDED = PIECES.add(',"pg.portal_suspended":true');
const COPY = PIECES.add(',"pg.copy":');
const ORIGIN = PIECES.add(',"txproxy.origin":');
const CLIENT_TEXT = PIECES.add(',"txproxy.client_text":');
const OUTCOME = PIECES.add(',"outcome":');
const IMPLICIT_TRUE = PIECES.add(',"implicit":true');
const IMPLICIT_FALSE = PIECES.add(',"implicit":false');
const STATEMENTS = PIECES.add(',"statements":');
const WRITES = PIECES.add(',"writes":');
const SAVEPOINTS_CREATED = PIECES.add(',"savepoints.created":');
const SAVEPOINTS_RELEASED = PIECES.add(',"savepoints.released":');
const SAVEPOINTS_ROLLED_BACK = PIECES.add(',"savepoints.rolled_back":');
const SAVEPOINTS_MAX_DEPTH = PIECES.add(',"savepoints.max_depth":');
const IDLE_IN_TRANSACTION = PIECES.add(',"idle_in_transaction_ms":');
const TRANSACTION_LOCK_WAIT = PIECES.add(',"lock_wait_ms":');
const FIRST_ERROR_CODE = PIECES.add(',"first_error":{"code":');
const FIRST_ERROR_MESSAGE = PIECES.add(',"message":');
const QUOTE = 0x22; // "
const CLOSE = 0x7d; // }

let lastSecond = NaN;
/** `YYYY-MM-DDTHH:MM:SS.` of lastSecond, as a string and as bytes. */
let secondPrefix = '';
let secondPrefixBytes: Uint8Array = new Uint8Array(0);
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
  if (!madeSecond(second, millisecond)) return new Date(ms).toISOString();
  return secondPrefix + MILLISECOND_SUFFIXES[millisecond];
}

/** isoTime(ms) written as bytes, without making the string. */
function writeIsoTime(w: JsonBytes, ms: number): void {
  const second = Math.floor(ms / 1000);
  const millisecond = ms - second * 1000;
  if (!madeSecond(second, millisecond)) {
    w.ascii(new Date(ms).toISOString());
    return;
  }
  w.bytes(secondPrefixBytes);
  w.padded(millisecond, 3);
  w.byte(0x5a); // Z
}

/** Whether the second's prefix is made (made now if need be) and stands for this time. */
function madeSecond(second: number, millisecond: number): boolean {
  // Whole milliseconds, as every time here is; another would need the Date's own rounding.
  if (!Number.isInteger(millisecond)) return false;
  if (second !== lastSecond) {
    const iso = new Date(second * 1000).toISOString();
    // Years beyond 9999 have a longer form: keep to the Date's.
    if (iso.length !== 24) return false;
    lastSecond = second;
    secondPrefix = iso.slice(0, 20);
    secondPrefixBytes = asciiBytes(secondPrefix);
  }
  return true;
}

function round(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}
