/**
 * Follows one client session's statements and transactions from the
 * messages that cross the proxy, and reports them to a TrackerListener.
 *
 * Matching: every client message that the server answers gets an entry in
 * a FIFO (responses come back in request order). A server message completes
 * the entry at the head. After an ErrorResponse in the extended protocol the
 * server skips to the next Sync, and so do we.
 *
 * Statements: each one starts when the server turns to it (at once, or when
 * the answer ahead of it arrives) and finishes with its CommandComplete,
 * EmptyQueryResponse, PortalSuspended or ErrorResponse. Transaction state
 * (the server's status, savepoints, outcomes) is the TransactionLedger's.
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
  type ErrorFields,
} from '../protocol/decode.js';
import { classifyStatement, type StatementInfo } from '../sql/classify.js';
import { classifyStatementCached, splitStatementsCached } from '../sql/statement-cache.js';
import { extractSqlCommenter, type SqlCommenterTags } from '../sql/sqlcommenter.js';
import { systemClock, type Clock } from './clock.js';
import { rowsOfTag } from './command-tag.js';
import { RequestTracker } from './request-tracker.js';
import { StringSyntax } from './string-syntax.js';
import { TransactionLedger, type PortalRun } from './transaction-ledger.js';
import type {
  Protocol,
  RequestInfo,
  SessionInfo,
  StatementRecord,
  TrackerListener,
  TransactionRecord,
} from './types.js';

export const enum EntryKind {
  Query,
  Parse,
  Bind,
  Describe,
  Close,
  Execute,
  Sync,
}

/** A client message awaiting its answer. */
export interface Entry {
  kind: EntryKind;
  /** Query: one per statement; Execute/Parse: one. */
  statements: StatementRecord[];
  /** Query: the statement being answered now. */
  index: number;
  /** Sent by txproxy itself: its answers are not for the client. */
  hidden: boolean;
  /** Parse/Bind: the statement concerned, to report it should it fail. */
  prepared?: Prepared;
  /** The client's next message after this one was CopyDone or CopyFail. */
  copyEndFollows: boolean;
  /** Execute: the run of the portal it executes. */
  portal: PortalRun | null;
}

/** What the client prepared: statement name → SQL and its classification. */
export interface Prepared {
  /** The prepared statement's name ('' for the unnamed one). */
  name: string;
  text: string;
  info: StatementInfo;
  tags: SqlCommenterTags | null;
}

const NO_STATEMENTS: StatementRecord[] = [];

const UNKNOWN_STATEMENT: Prepared = {
  name: '',
  text: '',
  info: classifyStatement(''),
  tags: null,
};

export class SessionTracker {
  private readonly queue: Entry[] = [];
  private head = 0;
  /** Set when an error made the server skip to Sync and the client has not sent it yet. */
  private skippingToSync = false;
  /**
   * Set while the server is in copy-in mode and the client has not ended the
   * COPY yet: the server ignores any Sync it receives meanwhile.
   */
  private syncsIgnoredUntilCopyEnd = false;

  private readonly prepared = new Map<string, Prepared>();
  private readonly portals = new Map<string, Prepared>();
  /** Portals executed since their Bind (see PortalRun). */
  private readonly portalRuns = new Map<string, PortalRun>();

  private readonly ledger: TransactionLedger;

  private statementSeq = 0;
  /** The statement the server is working on now. */
  private active: StatementRecord | null = null;
  /** The statement finished last (the admin API shows it for idle sessions, as pg_stat_activity does). */
  private last: StatementRecord | null = null;
  private readonly requests: RequestTracker;
  private readonly strings = new StringSyntax();
  /** Monotonic time the session began (the tracker is made with it), for its duration. */
  private readonly startMono: number;

  constructor(
    readonly session: SessionInfo,
    private readonly listener: TrackerListener,
    private readonly clock: Clock = systemClock,
  ) {
    this.startMono = clock.mono();
    this.requests = new RequestTracker(session.id, (request, previous) =>
      this.listener.requestStarted?.(this.session, request, previous),
    );
    this.ledger = new TransactionLedger(session, listener, clock, () => this.requests.request);
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
    return this.queue.length - this.head;
  }

  /** The statements sent and not yet answered, in the order the server runs them. */
  inFlightStatements(): StatementRecord[] {
    const statements: StatementRecord[] = [];
    for (let i = this.head; i < this.queue.length; i++) {
      const entry = this.queue[i];
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
      case Frontend.Query:
        return this.clientQuery(decodeQuery(buf, start, end));
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
        if (target === 'S') this.prepared.delete(name);
        else {
          this.portals.delete(name);
          this.portalRuns.delete(name);
        }
        return this.push(EntryKind.Close, [], false);
      }
      case Frontend.Sync:
        return this.push(EntryKind.Sync, [], false);
      case Frontend.CopyDone:
      case Frontend.CopyFail:
        this.clientCopyEnd();
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
    const { text, tags } = extractSqlCommenter(sql, scs);
    const request = this.requests.observe(tags);
    const infos = splitStatementsCached(text, scs);
    const statements = infos.map((info) => this.newStatement('simple', info.sentText, info, null, request));
    // The server reads the whole Query first: a SET in it changes how the next message reads.
    for (const info of infos) this.noteSetting(info);
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
    this.prepared.set(name, prepared);
    return this.push(EntryKind.Parse, NO_STATEMENTS, false, prepared);
  }

  clientBind(portal: string, statementName: string): Entry | null {
    const prepared = this.prepared.get(statementName) ?? { ...UNKNOWN_STATEMENT, name: statementName };
    this.portals.set(portal, prepared);
    // A new portal of that name: its first Execute runs it afresh.
    this.portalRuns.delete(portal);
    return this.push(EntryKind.Bind, NO_STATEMENTS, false, prepared);
  }

  clientExecute(portal: string): Entry | null {
    const found = this.portals.get(portal);
    const prepared = found ?? UNKNOWN_STATEMENT;
    this.noteClientActivity();
    const request = this.requests.observe(prepared.tags);
    const statement = this.newStatement('extended', prepared.text, prepared.info, found?.name ?? null, request);
    this.noteSetting(prepared.info);
    let run = this.portalRuns.get(portal);
    if (run === undefined) {
      run = { written: false };
      this.portalRuns.set(portal, run);
    }
    return this.push(EntryKind.Execute, [statement], false, undefined, run);
  }

  /** A statement that sets standard_conforming_strings changes how the client's next messages read. */
  private noteSetting(info: StatementInfo): void {
    if (info.operation !== 'SET' && info.operation !== 'RESET' && info.operation !== 'DISCARD') return;
    // The ReadyForQuery that ends this statement's message comes after those of the messages in flight.
    let readiesAhead = 1;
    for (let i = this.head; i < this.queue.length; i++) {
      const kind = this.queue[i].kind;
      if (kind === EntryKind.Query || kind === EntryKind.Sync) readiesAhead++;
    }
    this.strings.statementSent(info, readiesAhead);
  }

  /** What the named portal runs, for policy checks before an Execute is sent. */
  portalStatement(portal: string): { text: string; info: StatementInfo; tags: SqlCommenterTags | null } | null {
    return this.portals.get(portal) ?? null;
  }

  /** What the named prepared statement holds, for policy checks before a Bind is sent. */
  preparedStatement(name: string): { text: string; info: StatementInfo; tags: SqlCommenterTags | null } | null {
    return this.prepared.get(name) ?? null;
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

  /**
   * CopyDone/CopyFail: the client ends a COPY FROM STDIN. When the server
   * has not yet said CopyInResponse, mark where the copy data ends, so that
   * the Syncs sent before it can be told from those after it.
   */
  private clientCopyEnd(): void {
    if (this.syncsIgnoredUntilCopyEnd) {
      this.syncsIgnoredUntilCopyEnd = false;
      return;
    }
    if (this.head < this.queue.length) this.queue[this.queue.length - 1].copyEndFollows = true;
  }

  private push(kind: EntryKind, statements: StatementRecord[], hidden: boolean, prepared?: Prepared, portal: PortalRun | null = null): Entry | null {
    // In copy-in mode the server ignores Sync: it gets no ReadyForQuery.
    if (kind === EntryKind.Sync && this.syncsIgnoredUntilCopyEnd) return null;
    if (this.skippingToSync) {
      // The server discards everything up to Sync after an error.
      if (kind !== EntryKind.Sync) return null;
      this.skippingToSync = false;
    }
    const entry: Entry = { kind, statements, index: 0, hidden, prepared, copyEndFollows: false, portal };
    this.queue.push(entry);
    if (this.active === null) this.activateNext();
    return entry;
  }

  private newStatement(
    protocol: Protocol,
    text: string,
    info: StatementInfo,
    statementName: string | null,
    request: RequestInfo | null,
  ): StatementRecord {
    return {
      seq: 0,
      sessionId: this.session.id,
      transactionId: null,
      protocol,
      text,
      info,
      statementName,
      request: request ?? this.requests.request,
      startedAt: 0,
      startMono: 0,
      durationMs: 0,
      txStatusBefore: this.ledger.inferred,
      txStatusAfter: null,
      commandTag: null,
      rows: null,
      dataRows: 0,
      error: null,
      savepointDepth: 0,
      lockWaitMs: 0,
      suspended: false,
      interrupted: false,
      copy: null,
    };
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
        return this.shift();
      case Backend.RowDescription: {
        const entry = this.peek();
        return entry !== null && entry.kind === EntryKind.Describe ? this.shift() : entry;
      }
      case Backend.ParameterDescription:
        return this.peek();
      case Backend.CopyInResponse:
      case Backend.CopyOutResponse:
      case Backend.CopyBothResponse:
        if (this.active !== null) this.active.copy = type === Backend.CopyInResponse ? 'in' : type === Backend.CopyOutResponse ? 'out' : 'both';
        if (type === Backend.CopyInResponse) this.dropSyncsIgnoredByCopy();
        return this.peek();
      case Backend.FunctionCallResponse:
        return this.complete('FUNCTION CALL', null);
    }
    return null;
  }

  /** Counts a DataRow for the statement running (called from the header scan). */
  onDataRow(): void {
    if (this.active !== null) this.active.dataRows++;
  }

  private peek(): Entry | null {
    return this.head < this.queue.length ? this.queue[this.head] : null;
  }

  private shift(): Entry | null {
    if (this.head >= this.queue.length) return null;
    const entry = this.queue[this.head];
    this.queue[this.head] = undefined as unknown as Entry;
    this.head++;
    if (this.head > 64 && this.head * 2 > this.queue.length) {
      this.queue.splice(0, this.head);
      this.head = 0;
    }
    return entry;
  }

  /** CommandComplete, EmptyQueryResponse, PortalSuspended or ErrorResponse for the head entry. */
  private complete(tag: string | null, error: ErrorFields | null, suspended = false): Entry | null {
    // A COPY that ends (an error can end it before CopyDone) leaves copy-in mode: Syncs count again.
    this.syncsIgnoredUntilCopyEnd = false;
    const entry = this.peek();
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
    this.shift();
    if (error !== null) this.skipToSync();
    this.activateNext();
    return entry;
  }

  /**
   * In copy-in mode the server ignores Sync messages (PostgreSQL allows them
   * for clients that send one without noticing the command was a COPY:
   * libpq's PQexecParams writes Parse/Bind/Describe/Execute/Sync, then the
   * data, CopyDone and another Sync). The Syncs queued between the COPY and
   * the client's CopyDone/CopyFail get no ReadyForQuery: drop them, and any
   * that arrive before the client ends the COPY.
   */
  private dropSyncsIgnoredByCopy(): void {
    let i = this.head;
    while (i < this.queue.length) {
      const entry = this.queue[i];
      if (i > this.head && entry.kind === EntryKind.Sync) this.queue.splice(i, 1);
      else i++;
      if (entry.copyEndFollows) return;
    }
    this.syncsIgnoredUntilCopyEnd = true;
  }

  /** After an error in the extended protocol, the server ignores everything up to Sync. */
  private skipToSync(): void {
    while (this.head < this.queue.length && this.queue[this.head].kind !== EntryKind.Sync) this.shift();
    if (this.head >= this.queue.length) this.skippingToSync = true;
  }

  private ready(status: TxStatus): Entry | null {
    // Everything up to the Sync or Query this answers is done.
    let entry: Entry | null = null;
    while (this.head < this.queue.length) {
      entry = this.shift();
      if (entry !== null && (entry.kind === EntryKind.Sync || entry.kind === EntryKind.Query)) break;
    }
    this.skippingToSync = false;
    this.syncsIgnoredUntilCopyEnd = false;
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

  // ------------------------------------------------- statements and transactions

  /** Starts the next statement in the queue, unless a Sync/Query boundary must be answered first. */
  private activateNext(): void {
    if (this.active !== null) return;
    for (let i = this.head; i < this.queue.length; i++) {
      const entry = this.queue[i];
      if (entry.kind === EntryKind.Query) {
        if (i > this.head) return; // a pipelined Query runs after the one ahead is answered
        const statement = entry.statements[entry.index];
        if (statement !== undefined) this.activate(statement);
        return;
      }
      if (entry.kind === EntryKind.Sync) return;
      if (entry.kind === EntryKind.Execute) {
        this.activate(entry.statements[0]);
        return;
      }
    }
  }

  private activate(statement: StatementRecord): void {
    statement.seq = ++this.statementSeq;
    statement.startedAt = this.clock.wall();
    statement.startMono = this.clock.mono();
    this.ledger.statementStarting(statement);
    this.active = statement;
    this.listener.statementStarted?.(this.session, statement);
  }

  private finish(statement: StatementRecord, tag: string | null, error: ErrorFields | null, suspended: boolean, portal: PortalRun | null = null): void {
    statement.durationMs = this.clock.mono() - statement.startMono;
    statement.commandTag = tag;
    statement.error = error;
    statement.suspended = suspended;
    statement.rows = tag !== null ? rowsOfTag(tag) : null;
    if (statement.rows === null && statement.dataRows > 0) statement.rows = statement.dataRows;
    if (this.active === statement) this.active = null;
    this.last = statement;
    const ending = this.ledger.statementFinished(statement, tag, error, portal);
    // The statement's record comes before the record of the transaction it ends.
    this.listener.statementFinished?.(this.session, statement);
    if (ending !== null) {
      this.ledger.end(ending);
      // COMMIT AND CHAIN / ROLLBACK AND CHAIN: the next one starts at once.
      if (statement.info.chain) this.ledger.open(false, statement);
    }
  }

  /**
   * Adds lock-wait time found by the lock monitor to a statement (the
   * running one by default) and to the transaction it belongs to. The
   * monitor learns a wait ended when its statement finishes, so it may name
   * that statement from its statementFinished listener, after `active` moved on.
   */
  addLockWait(ms: number, statement: StatementRecord | null = this.active): void {
    if (statement !== null) statement.lockWaitMs += ms;
    this.ledger.addLockWait(ms, statement);
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
    for (let i = this.head; i < this.queue.length; i++) {
      const entry = this.queue[i];
      if (entry.kind !== EntryKind.Query && entry.kind !== EntryKind.Execute) continue;
      const from = entry.kind === EntryKind.Query ? entry.index : 0;
      for (const statement of entry.statements.slice(from)) {
        if (statement !== this.active && statement.seq === 0) continue; // never started
        statement.interrupted = true;
        statement.durationMs = this.clock.mono() - statement.startMono;
        this.ledger.statementInterrupted(statement);
        this.listener.statementFinished?.(this.session, statement);
      }
    }
    this.queue.length = 0;
    this.head = 0;
    this.active = null;
    this.ledger.end(this.ledger.transaction?.failed === true ? 'failed' : 'disconnect');
    this.listener.sessionEnded?.(this.session, clean, this.clock.mono() - this.startMono);
  }
}
