/**
 * One session's transaction state: the open transaction, its savepoints,
 * the status as the server last reported it and as command tags have moved
 * it since, and the time spent idle inside a transaction.
 *
 * The server's word wins: ReadyForQuery settles whatever the tags suggested.
 * Between two ReadyForQuery messages (a multi-statement Query, a pipelined
 * batch), tags move the inferred status: BEGIN → T, COMMIT/ROLLBACK → I, an
 * error inside a block → E, ROLLBACK TO → T.
 */
import type { TxStatus } from '../protocol/codes.js';
import type { ErrorFields } from '../protocol/decode.js';
import { isWriteTag } from './command-tag.js';
import { SavepointStack } from './savepoint-stack.js';
import type { Clock } from './clock.js';
import type { RequestInfo, SessionInfo, StatementRecord, TrackerListener, TransactionOutcome, TransactionRecord } from './types.js';

/**
 * One run of a protocol-level portal, from its Bind: PostgreSQL runs a
 * write with RETURNING to completion on the portal's first Execute, even
 * when a row limit then answers PortalSuspended, and later Executes only
 * fetch the rows it returned. The write counts once per run.
 */
export interface PortalRun {
  written: boolean;
}

/** How many statements a transaction keeps for attribution. */
const STATEMENT_LOG_LIMIT = 50;
/** The log of a transaction before its first statement: shared, never written to. */
const NO_STATEMENTS: StatementRecord[] = [];

/** How much of a statement's text attribution shows (a lock wait's record, the admin API). */
const SUMMARY_TEXT_LIMIT = 2048;

/** A statement's text as attribution shows it. */
export function summaryText(text: string): string {
  return text.length > SUMMARY_TEXT_LIMIT ? text.slice(0, SUMMARY_TEXT_LIMIT) + '…' : text;
}

export class TransactionLedger {
  private tx: TransactionRecord | null = null;
  private seq = 0;
  /** `<session id>.t`: a transaction's id is this and its number. */
  private readonly idPrefix: string;
  private readonly savepoints = new SavepointStack();
  /** Authoritative status of the last ReadyForQuery. */
  private serverStatus: TxStatus = 'I';
  /** Status as moved by command tags since then. */
  private inferredStatus: TxStatus = 'I';
  /** When the session went idle inside a transaction (monotonic ms), or -1. */
  private idleSince = -1;

  constructor(
    private readonly session: SessionInfo,
    private readonly listener: TrackerListener,
    private readonly clock: Clock,
    private readonly currentRequest: () => RequestInfo,
  ) {
    this.idPrefix = `${session.id}.t`;
  }

  get transaction(): TransactionRecord | null {
    return this.tx;
  }

  get status(): TxStatus {
    return this.serverStatus;
  }

  get inferred(): TxStatus {
    return this.inferredStatus;
  }

  get savepointDepth(): number {
    return this.savepoints.depth;
  }

  get savepointNames(): readonly string[] {
    return this.savepoints.list();
  }

  get idleInTransactionSince(): number {
    return this.idleSince;
  }

  /** The client sent a statement: an idle-in-transaction period, if any, ends. */
  clientActive(): void {
    if (this.idleSince < 0) return;
    if (this.tx !== null) this.tx.idleInTransactionMs += this.clock.mono() - this.idleSince;
    this.idleSince = -1;
  }

  /** A statement starts: it opens a transaction unless one is open or it only ends one. */
  statementStarting(statement: StatementRecord): void {
    statement.txStatusBefore = this.inferredStatus;
    const control = statement.info.txControl;
    if (this.tx === null && (control === null || control === 'begin')) this.open(control !== 'begin', statement);
    statement.transactionId = this.tx?.id ?? null;
  }

  /**
   * A statement finished. Returns the outcome when its tag ends the
   * transaction: the caller reports the statement first, then calls end().
   * `portal`: the portal run an Execute belongs to, whose write counts once.
   */
  statementFinished(statement: StatementRecord, tag: string | null, error: ErrorFields | null, portal: PortalRun | null = null): TransactionOutcome | null {
    const tx = this.tx;
    if (tx !== null) {
      tx.statements++;
      const log = tx.statementLog;
      // The first statement gets an array of one: most transactions (autocommit) have only it,
      // and an empty array's first push makes room for seventeen.
      if (log === NO_STATEMENTS) tx.statementLog = [statement];
      else if (log.length < STATEMENT_LOG_LIMIT) log.push(statement);
    }
    if (error === null && wrote(statement, tag)) {
      if (tx !== null && !(portal?.written ?? false)) tx.writes++;
      if (portal !== null) portal.written = true;
    }
    let ending: TransactionOutcome | null = null;
    if (error !== null) this.noteError(error);
    else if (tag !== null) ending = this.applyTag(statement, tag);
    statement.txStatusAfter = this.inferredStatus;
    statement.savepointDepth = ending === null ? this.savepoints.depth : 0;
    return ending;
  }

  /** A statement of this transaction ended without an answer (the session ended). */
  statementInterrupted(statement: StatementRecord): void {
    statement.txStatusAfter = null;
    statement.savepointDepth = this.savepoints.depth;
    if (this.tx !== null) this.tx.statements++;
  }

  /** An error: a block becomes failed until ROLLBACK TO or its end. */
  noteError(error: ErrorFields): void {
    const tx = this.tx;
    if (tx === null) return;
    tx.firstError ??= { code: error.code, message: error.message };
    tx.failed = true;
    if (!tx.implicit) this.inferredStatus = 'E';
  }

  /** ReadyForQuery: the server's status settles the transaction; `idle` when nothing else is in flight. */
  ready(status: TxStatus, idle: boolean): void {
    this.serverStatus = status;
    this.inferredStatus = status;
    const tx = this.tx;
    if (status === 'I') {
      if (tx !== null) this.end(tx.failed ? 'failed' : 'commit');
    } else if (tx === null) {
      // In a block we did not see begin (e.g. BEGIN inside a function): adopt it.
      this.open(false, null);
    } else {
      tx.implicit = false;
    }
    if (status === 'E' && this.tx !== null) this.tx.failed = true;
    this.idleSince = status === 'I' || !idle ? -1 : this.clock.mono();
  }

  /**
   * Moves the inferred state by a successful command's tag; returns the
   * outcome when the tag ends the transaction.
   */
  private applyTag(statement: StatementRecord, tag: string): TransactionOutcome | null {
    const tx = this.tx;
    const info = statement.info;
    switch (tag) {
      case 'BEGIN':
      case 'START TRANSACTION':
        if (tx === null) this.open(false, statement);
        else tx.implicit = false; // BEGIN inside a multi-statement Query or batch adopts what ran before
        statement.transactionId = this.tx?.id ?? null;
        this.inferredStatus = 'T';
        return null;
      case 'COMMIT':
        this.inferredStatus = info.chain ? 'T' : 'I';
        return tx === null ? null : tx.failed ? 'failed' : 'commit';
      case 'ROLLBACK':
        if (info.txControl === 'rollback_to') {
          this.savepointOp('rollback_to', info.savepoint);
          return null;
        }
        this.inferredStatus = info.chain ? 'T' : 'I';
        // COMMIT of a failed transaction answers ROLLBACK: the error forced it.
        return tx === null ? null : tx.failed || info.txControl === 'commit' ? 'failed' : 'rollback';
      case 'PREPARE TRANSACTION':
        this.inferredStatus = 'I';
        return tx === null ? null : 'prepared';
      case 'SAVEPOINT':
        this.savepointOp('create', info.savepoint);
        return null;
      case 'RELEASE':
        this.savepointOp('release', info.savepoint);
        return null;
    }
    return null;
  }

  private savepointOp(op: 'create' | 'release' | 'rollback_to', name: string | null): void {
    const tx = this.tx;
    if (tx === null || name === null) return;
    if (op === 'create') {
      this.savepoints.push(name);
      tx.savepointsCreated++;
      tx.maxSavepointDepth = Math.max(tx.maxSavepointDepth, this.savepoints.depth);
    } else if (op === 'release') {
      tx.savepointsReleased += this.savepoints.release(name);
    } else {
      this.savepoints.rollbackTo(name);
      tx.savepointsRolledBack++;
      // The transaction is usable again: ROLLBACK TO recovers from an error.
      tx.failed = false;
      this.inferredStatus = 'T';
    }
    this.listener.savepoint?.(this.session, op, name, this.savepoints.depth, tx);
  }

  /** Opens a transaction; COMMIT AND CHAIN passes the COMMIT as `first`. */
  open(implicit: boolean, first: StatementRecord | null): void {
    // It starts with its first statement; without one (adopted from ReadyForQuery), now.
    const started = first !== null && first.startMono > 0;
    this.tx = {
      id: this.idPrefix + ++this.seq,
      sessionId: this.session.id,
      startedAt: started ? first.startedAt : this.clock.wall(),
      startMono: started ? first.startMono : this.clock.mono(),
      endedAt: 0,
      durationMs: 0,
      outcome: null,
      implicit,
      statements: 0,
      writes: 0,
      savepointsCreated: 0,
      savepointsReleased: 0,
      savepointsRolledBack: 0,
      maxSavepointDepth: 0,
      idleInTransactionMs: 0,
      lockWaitMs: 0,
      firstError: null,
      failed: false,
      request: first?.request ?? this.currentRequest(),
      statementLog: NO_STATEMENTS,
    };
    this.savepoints.clear();
    this.listener.transactionStarted?.(this.session, this.tx);
  }

  end(outcome: TransactionOutcome): void {
    const tx = this.tx;
    if (tx === null) return;
    if (this.idleSince >= 0) {
      tx.idleInTransactionMs += this.clock.mono() - this.idleSince;
      this.idleSince = -1;
    }
    tx.outcome = outcome;
    tx.durationMs = this.clock.mono() - tx.startMono;
    // On the monotonic clock from its start, as its duration: one clock read less per transaction.
    // Whole milliseconds, as the wall clock gives them (and records print them).
    tx.endedAt = Math.floor(tx.startedAt + tx.durationMs);
    this.tx = null;
    this.savepoints.clear();
    this.listener.transactionEnded?.(this.session, tx);
  }

  /** Lock-wait time for the transaction, when `statement` (if given) belongs to it. */
  addLockWait(ms: number, statement: StatementRecord | null): void {
    if (this.tx !== null && (statement === null || statement.transactionId === this.tx.id)) this.tx.lockWaitMs += ms;
  }
}

/**
 * Whether a statement that succeeded changed data: by what it is, or by its
 * tag. One stopped at its row limit (PortalSuspended) has no tag, but has run.
 */
function wrote(statement: StatementRecord, tag: string | null): boolean {
  if (tag === null) return statement.suspended && statement.info.write;
  return statement.info.write || isWriteTag(tag) || (tag.startsWith('COPY ') && statement.copy === 'in');
}
