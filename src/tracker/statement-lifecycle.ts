/**
 * The statements of one session from their making to their end: each is
 * numbered and timed when the server turns to it, finished with its tag or
 * error (or interrupted when the session ends), and reported to the ledger
 * and the listener, a statement's record before that of the transaction it
 * ends.
 *
 * SessionTracker extends this class rather than holding one, so that its
 * per-message paths (a DataRow above all) reach the running statement as a
 * field of their own.
 */
import type { ErrorFields } from '../protocol/decode.js';
import type { StatementInfo } from '../sql/classify.js';
import type { ShapedQuery } from '../sql/statement-cache.js';
import { ChunkClock, type Clock } from './clock.js';
import { rowsOfTag } from './command-tag.js';
import { RequestTracker } from './request-tracker.js';
import { TrackedStatement } from './statement-record.js';
import { TransactionLedger, type PortalRun } from './transaction-ledger.js';
import type { Protocol, RequestInfo, SessionInfo, StatementRecord, TrackerListener } from './types.js';

export abstract class StatementLifecycle {
  /** The statement the server is working on now. */
  protected active: StatementRecord | null = null;
  /** The statement finished last (the admin API shows it for idle sessions, as pg_stat_activity does). */
  protected last: StatementRecord | null = null;
  private statementSeq = 0;
  protected readonly requests: RequestTracker;
  protected readonly ledger: TransactionLedger;

  /** The clock statements and transactions are timed by, read once per chunk (see chunkStarted). */
  protected readonly clock: ChunkClock;

  constructor(
    readonly session: SessionInfo,
    protected readonly listener: TrackerListener,
    clock: Clock,
  ) {
    this.clock = new ChunkClock(clock);
    this.requests = new RequestTracker(session.id, (request, previous) =>
      this.listener.requestStarted?.(this.session, request, previous),
    );
    this.ledger = new TransactionLedger(session, listener, this.clock, () => this.requests.request);
  }

  /**
   * The messages until chunkEnded() came in one chunk from a socket: they
   * are timed as of one instant (see ChunkClock).
   */
  chunkStarted(): void {
    this.clock.chunkStarted();
  }

  chunkEnded(): void {
    this.clock.chunkEnded();
  }

  /** A statement sent, not started yet (seq 0); `index` is its place in a ShapedQuery given as its text. */
  protected newStatement(
    protocol: Protocol,
    text: string | ShapedQuery,
    info: StatementInfo,
    statementName: string | null,
    request: RequestInfo | null,
    index = 0,
  ): StatementRecord {
    return new TrackedStatement(this.session.id, protocol, text, index, info, statementName, request ?? this.requests.request, this.ledger.inferred);
  }

  protected activate(statement: StatementRecord): void {
    statement.seq = ++this.statementSeq;
    statement.startMono = this.clock.mono();
    statement.startedAt = this.clock.wall();
    this.ledger.statementStarting(statement);
    this.active = statement;
    this.listener.statementStarted?.(this.session, statement);
  }

  /** The session's own look at each statement the server finished (transaction pooling: what it may leave on the server). */
  afterStatement: ((statement: StatementRecord) => void) | null = null;

  protected finish(statement: StatementRecord, tag: string | null, error: ErrorFields | null, suspended: boolean, portal: PortalRun | null = null): void {
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
    this.afterStatement?.(statement);
    if (ending !== null) {
      this.ledger.end(ending);
      // COMMIT AND CHAIN / ROLLBACK AND CHAIN: the next one starts at once.
      if (statement.info.chain) this.ledger.open(false, statement);
    }
  }

  /** The session ended while the statement ran: its record says so. */
  protected interrupt(statement: StatementRecord): void {
    statement.interrupted = true;
    statement.durationMs = this.clock.mono() - statement.startMono;
    this.ledger.statementInterrupted(statement);
    this.listener.statementFinished?.(this.session, statement);
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
}
