/**
 * Follows one client session's statements and transactions from the
 * messages that cross the proxy, and reports them to a TrackerListener.
 *
 * Matching: every client message that the server answers gets an entry in
 * the AnswerQueue (answer-queue.ts), which follows the server in what it
 * skips (to Sync after an error, Syncs in copy-in mode). A server message
 * completes the entry at the head. What the client prepared and bound is
 * kept in PreparedStatements (prepared-statements.ts).
 *
 * Statements: each one starts when the server turns to it (at once, or when
 * the answer ahead of it arrives) and finishes with its CommandComplete,
 * EmptyQueryResponse, PortalSuspended or ErrorResponse (how a statement is
 * started and finished is StatementLifecycle's). Transaction state (the
 * server's status, savepoints, outcomes) is the TransactionLedger's.
 */
import { Backend, Frontend, type TxStatus } from '../protocol/codes.js';
import {
  decodeBind,
  decodeCommandComplete,
  decodeErrorFields,
  decodeExecute,
  decodeParse,
  decodeQuery,
  decodeReadyForQuery,
  decodeTarget,
  queryTextStart,
  type ErrorFields,
} from '../protocol/decode.js';
import { classifyStatement, type StatementInfo } from '../sql/classify.js';
import { classifyStatementCached, knownShapeOf, splitStatementsCached, type ShapedQuery } from '../sql/statement-cache.js';
import { extractSqlCommenter, findSqlCommenter, type SqlCommenterTags } from '../sql/sqlcommenter.js';
import { AnswerQueue, EntryKind, type Entry } from './answer-queue.js';
import { systemClock, type Clock } from './clock.js';
import { PreparedStatements, UNKNOWN_STATEMENT, type Prepared } from './prepared-statements.js';
import { StatementLifecycle } from './statement-lifecycle.js';
import { StringSyntax } from './string-syntax.js';
import type { PortalRun } from './transaction-ledger.js';
import type {
  RequestInfo,
  SessionInfo,
  StatementRecord,
  TrackerListener,
  TransactionRecord,
} from './types.js';

export { EntryKind, type Entry } from './answer-queue.js';
export type { Prepared } from './prepared-statements.js';

const NO_STATEMENTS: StatementRecord[] = [];

export class SessionTracker extends StatementLifecycle {
  private readonly answers = new AnswerQueue();
  private readonly prepared = new PreparedStatements();
  private readonly strings = new StringSyntax();
  /** Monotonic time the session began (the tracker is made with it), for its duration. */
  private readonly startMono: number;

  constructor(session: SessionInfo, listener: TrackerListener, clock: Clock = systemClock) {
    super(session, listener, clock);
    this.startMono = clock.mono();
  }

  // ---------------------------------------------------------------- state

  get status(): TxStatus {
    return this.ledger.status;
  }

  /** The status as far as the client's messages so far will leave it (inferred). */
  get currentStatus(): TxStatus {
    return this.ledger.inferred;
  }

  get transaction(): TransactionRecord | null {
    return this.ledger.transaction;
  }

  get activeStatement(): StatementRecord | null {
    return this.active;
  }

  get lastStatement(): StatementRecord | null {
    return this.last;
  }

  get savepointDepth(): number {
    return this.ledger.savepointDepth;
  }

  get savepointNames(): readonly string[] {
    return this.ledger.savepointNames;
  }

  get request(): RequestInfo {
    return this.requests.request;
  }

  /** Messages sent and not yet answered. */
  get pending(): number {
    return this.answers.pending;
  }

  /** The statements sent and not yet answered, in the order the server runs them. */
  inFlightStatements(): StatementRecord[] {
    const statements: StatementRecord[] = [];
    for (const entry of this.answers.inFlight()) {
      statements.push(...(entry.kind === EntryKind.Query ? entry.statements.slice(entry.index) : entry.statements));
    }
    return statements;
  }

  /**
   * The session's standard_conforming_strings as the server will read the
   * client's next message: how its strings, and so its statements, split.
   */
  get standardConformingStrings(): boolean {
    return this.strings.standardConformingStrings;
  }

  /** A ParameterStatus from the server (at the start, and after a change). */
  onParameterStatus(name: string, value: string): void {
    this.strings.parameterStatus(name, value);
  }

  /** Idle inside a transaction since (monotonic ms), or -1. */
  get idleInTransactionSince(): number {
    return this.ledger.idleInTransactionSince;
  }

  /** Emits the session's start and its first request. */
  start(): void {
    this.strings.sessionReady();
    this.listener.sessionStarted?.(this.session);
    this.requests.start();
  }

  // ------------------------------------------------------ client messages

  /**
   * Records a client message (whole, header included) that the server will
   * answer. Returns the entry created, if any, so the caller can mark it.
   */
  onClientMessage(type: number, buf: Buffer, start: number, end: number): Entry | null {
    switch (type) {
      case Frontend.Query: {
        // A text of a known shape is recognised in its bytes, and decoded only if a record's text is read.
        const shaped = buf[end - 1] === 0 ? knownShapeOf(buf, queryTextStart(start), end - 1) : null;
        if (shaped !== null) return this.clientQueryInfos(shaped.statements, null, shaped);
        return this.clientQuery(decodeQuery(buf, start, end));
      }
      case Frontend.Parse: {
        const { name, sql } = decodeParse(buf, start, end);
        return this.clientParse(name, sql);
      }
      case Frontend.Bind: {
        const { portal, statement } = decodeBind(buf, start, end);
        return this.clientBind(portal, statement);
      }
      case Frontend.Execute:
        return this.clientExecute(decodeExecute(buf, start, end).portal);
      case Frontend.Describe:
        return this.push(EntryKind.Describe, [], false);
      case Frontend.Close: {
        const { target, name } = decodeTarget(buf, start, end);
        this.prepared.closed(target, name);
        return this.push(EntryKind.Close, [], false);
      }
      case Frontend.Sync:
        return this.push(EntryKind.Sync, [], false);
      case Frontend.CopyDone:
      case Frontend.CopyFail:
        this.answers.clientEndedCopy();
        return null;
      case Frontend.FunctionCall:
        // Answered like a one-statement Query: FunctionCallResponse, then ReadyForQuery.
        return this.clientQueryStatements([this.newStatement('simple', 'fastpath function call', classifyStatement('SELECT'), null, null)]);
    }
    return null;
  }

  /** A simple-protocol Query. */
  clientQuery(sql: string): Entry | null {
    const scs = this.strings.standardConformingStrings;
    const commented = findSqlCommenter(sql, scs);
    const text = commented === null ? sql : commented.text;
    return this.clientQueryInfos(splitStatementsCached(text, scs), commented === null ? null : commented.tags);
  }

  /** A Query of these statements, whose sqlcommenter tags were these; `shaped` has their texts when they are a shape's. */
  private clientQueryInfos(infos: readonly StatementInfo[], tags: SqlCommenterTags | null, shaped: ShapedQuery | null = null): Entry | null {
    const request = this.requests.observe(tags);
    // A loop, not map(): no closure per Query.
    const statements = new Array<StatementRecord>(infos.length);
    for (let i = 0; i < infos.length; i++) statements[i] = this.newStatement('simple', shaped ?? infos[i].sentText, infos[i], null, request, i);
    // The server reads the whole Query first: a SET in it changes how the next message reads.
    for (let i = 0; i < infos.length; i++) this.noteSetting(infos[i]);
    return this.clientQueryStatements(statements);
  }

  private clientQueryStatements(statements: StatementRecord[]): Entry | null {
    this.noteClientActivity();
    return this.push(EntryKind.Query, statements, false);
  }

  clientParse(name: string, sql: string): Entry | null {
    const scs = this.strings.standardConformingStrings;
    const { text, tags } = extractSqlCommenter(sql, scs);
    const prepared: Prepared = { name, text, info: classifyStatementCached(text, scs), tags };
    this.prepared.parsed(prepared);
    return this.push(EntryKind.Parse, NO_STATEMENTS, false, prepared);
  }

  clientBind(portal: string, statementName: string): Entry | null {
    const prepared = this.prepared.bound(portal, statementName);
    return this.push(EntryKind.Bind, NO_STATEMENTS, false, prepared);
  }

  clientExecute(portal: string): Entry | null {
    const found = this.prepared.portal(portal);
    const prepared = found ?? UNKNOWN_STATEMENT;
    this.noteClientActivity();
    const request = this.requests.observe(prepared.tags);
    const statement = this.newStatement('extended', prepared.text, prepared.info, found?.name ?? null, request);
    this.noteSetting(prepared.info);
    return this.push(EntryKind.Execute, [statement], false, undefined, this.prepared.runOf(portal));
  }

  /** A statement that sets standard_conforming_strings changes how the client's next messages read. */
  private noteSetting(info: StatementInfo): void {
    if (info.operation !== 'SET' && info.operation !== 'RESET' && info.operation !== 'DISCARD') return;
    // The ReadyForQuery that ends this statement's message comes after those of the messages in flight.
    this.strings.statementSent(info, 1 + this.answers.readiesAhead());
  }

  /** What the named portal runs, for policy checks before an Execute is sent. */
  portalStatement(portal: string): { text: string; info: StatementInfo; tags: SqlCommenterTags | null } | null {
    return this.prepared.portal(portal) ?? null;
  }

  /** What the named prepared statement holds, for policy checks before a Bind is sent. */
  preparedStatement(name: string): { text: string; info: StatementInfo; tags: SqlCommenterTags | null } | null {
    return this.prepared.statement(name) ?? null;
  }

  /**
   * The request a statement with these tags belongs to, switching to a new
   * one now if they carry a new trace id. A policy calls this before it
   * sends anything of the request; the tracker's own later look at the same
   * tags then changes nothing.
   */
  observeRequest(tags: SqlCommenterTags | null): RequestInfo {
    return this.requests.observe(tags);
  }

  /** Whether a statement with these tags would start a new request. */
  startsNewRequest(tags: SqlCommenterTags | null): boolean {
    return this.requests.startsNew(tags);
  }

  /** Records a message txproxy sends on its own; its answers are dropped. */
  pushHidden(kind: EntryKind, statements: StatementRecord[] = []): Entry | null {
    return this.push(kind, statements, true);
  }

  private push(kind: EntryKind, statements: StatementRecord[], hidden: boolean, prepared?: Prepared, portal: PortalRun | null = null): Entry | null {
    const entry = this.answers.push(kind, statements, hidden, prepared, portal);
    if (entry !== null && this.active === null) this.activateNext();
    return entry;
  }

  /** The client spoke: an idle-in-transaction period, if any, ends. */
  private noteClientActivity(): void {
    this.ledger.clientActive();
  }

  // ------------------------------------------------------ server messages

  /**
   * Records a server message (whole). Returns the entry it answered, if it
   * answered one, so the caller can tell hidden answers from the client's.
   */
  onServerMessage(type: number, buf: Buffer, start: number, end: number): Entry | null {
    switch (type) {
      case Backend.CommandComplete:
        return this.complete(decodeCommandComplete(buf, start, end), null);
      case Backend.EmptyQueryResponse:
        return this.complete(null, null);
      case Backend.PortalSuspended:
        return this.complete(null, null, true);
      case Backend.ErrorResponse:
        return this.complete(null, decodeErrorFields(buf, start, end));
      case Backend.ReadyForQuery:
        return this.ready(decodeReadyForQuery(buf, start));
      case Backend.ParseComplete:
      case Backend.BindComplete:
      case Backend.CloseComplete:
      case Backend.NoData:
        return this.answers.shift();
      case Backend.RowDescription: {
        const entry = this.answers.peek();
        return entry !== null && entry.kind === EntryKind.Describe ? this.answers.shift() : entry;
      }
      case Backend.ParameterDescription:
        return this.answers.peek();
      case Backend.CopyInResponse:
      case Backend.CopyOutResponse:
      case Backend.CopyBothResponse:
        if (this.active !== null) this.active.copy = type === Backend.CopyInResponse ? 'in' : type === Backend.CopyOutResponse ? 'out' : 'both';
        if (type === Backend.CopyInResponse) this.answers.copyInStarted();
        return this.answers.peek();
      case Backend.FunctionCallResponse:
        return this.complete('FUNCTION CALL', null);
    }
    return null;
  }

  /** Counts a DataRow for the statement running (called from the header scan). */
  onDataRow(): void {
    if (this.active !== null) this.active.dataRows++;
  }

  /** CommandComplete, EmptyQueryResponse, PortalSuspended or ErrorResponse for the head entry. */
  private complete(tag: string | null, error: ErrorFields | null, suspended = false): Entry | null {
    this.answers.commandEnded();
    const entry = this.answers.peek();
    if (entry === null || entry.kind === EntryKind.Sync) {
      // Not an answer to anything in flight: an error the server raised on its own (FATAL).
      if (error !== null) this.listener.sessionError?.(this.session, error);
      if (error !== null) this.ledger.noteError(error);
      return entry;
    }
    let statement = entry.kind === EntryKind.Query ? entry.statements[entry.index] : entry.statements[0];
    if (error !== null && entry.kind !== EntryKind.Query && entry.kind !== EntryKind.Execute) {
      // Parse/Bind failed ahead of an Execute already started: that Execute
      // (most often of the same SQL) is what the client will see fail.
      // Otherwise the failed Parse itself is the statement (a syntax error has no Execute).
      if (this.active !== null) statement = this.active;
      else if (entry.prepared !== undefined) {
        const p = entry.prepared;
        statement = this.newStatement('extended', p.text, p.info, p.name, this.requests.observe(p.tags));
      }
    }
    if (statement !== undefined) {
      if (statement !== this.active) this.activate(statement);
      this.finish(statement, tag, error, suspended, entry.portal);
    } else if (error !== null) {
      this.ledger.noteError(error);
    }
    if (entry.kind === EntryKind.Query) {
      // An error skips the rest of the Query; ReadyForQuery ends the entry.
      entry.index = error !== null ? entry.statements.length : entry.index + 1;
      this.activateNext();
      return entry;
    }
    this.answers.shift();
    if (error !== null) this.answers.skipToSync();
    this.activateNext();
    return entry;
  }

  private ready(status: TxStatus): Entry | null {
    // Everything up to the Sync or Query this answers is done.
    const entry = this.answers.ready();
    this.strings.ready(this.pending === 0);
    if (this.active !== null) {
      // The server ran fewer statements than the Query seemed to hold.
      this.finish(this.active, null, null, false);
    }
    this.ledger.ready(status, this.pending === 0);
    this.listener.ready?.(this.session, status);
    this.activateNext();
    return entry;
  }

  // ------------------------------------------------- statements

  /** Starts the next statement in the queue, unless a Sync/Query boundary must be answered first. */
  private activateNext(): void {
    if (this.active !== null) return;
    const statement = this.answers.nextToStart();
    if (statement !== undefined) this.activate(statement);
  }

  /**
   * The session is over. Statements still in flight are reported as
   * interrupted, and an open transaction ends as `disconnect` (closing the
   * server connection rolls it back) — or as `failed` when an error had
   * already doomed it (a failed block, an implicit transaction whose
   * statement failed, a FATAL that ended the session): the server rolled it
   * back for that error, whether or not its ReadyForQuery came.
   */
  end(clean: boolean): void {
    for (const entry of this.answers.inFlight()) {
      if (entry.kind !== EntryKind.Query && entry.kind !== EntryKind.Execute) continue;
      const from = entry.kind === EntryKind.Query ? entry.index : 0;
      for (const statement of entry.statements.slice(from)) {
        if (statement !== this.active && statement.seq === 0) continue; // never started
        this.interrupt(statement);
      }
    }
    this.answers.clear();
    this.active = null;
    this.ledger.end(this.ledger.transaction?.failed === true ? 'failed' : 'disconnect');
    this.listener.sessionEnded?.(this.session, clean, this.clock.mono() - this.startMono);
  }
}
