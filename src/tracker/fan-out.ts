/**
 * One TrackerListener that passes each event to several, in order.
 *
 * The tracker raises four or five events per statement, and an App has six
 * to eight listeners, so this dispatch runs some thirty times for each
 * transaction. The listeners sit in fixed fields, and each event calls
 * them one by one: every call site then always meets the same listener, a
 * call the compiler can make direct and inline. A loop over bound
 * functions (what this replaced) makes each of those calls a generic one
 * through the bound function. More listeners than the fields hold go to a
 * FanOut in the last one.
 */
import type { TxStatus } from '../protocol/codes.js';
import type { ErrorFields } from '../protocol/decode.js';
import type { RequestInfo, SavepointOp, SessionInfo, StatementRecord, TrackerListener, TransactionRecord } from './types.js';

/** Listeners held in fields; the last field holds a FanOut of the rest when there are more. */
const FIELDS = 8;

/** Stands in an empty field: every event, nothing done. */
const NONE: TrackerListener = {};

export function fanOut(listeners: readonly TrackerListener[]): TrackerListener {
  if (listeners.length === 1) return listeners[0];
  const fields = listeners.length <= FIELDS ? [...listeners] : [...listeners.slice(0, FIELDS - 1), fanOut(listeners.slice(FIELDS - 1))];
  while (fields.length < FIELDS) fields.push(NONE);
  return new FanOut(fields);
}

class FanOut implements TrackerListener {
  private readonly l0: TrackerListener;
  private readonly l1: TrackerListener;
  private readonly l2: TrackerListener;
  private readonly l3: TrackerListener;
  private readonly l4: TrackerListener;
  private readonly l5: TrackerListener;
  private readonly l6: TrackerListener;
  private readonly l7: TrackerListener;
  /** The same listeners, for the rarer events. */
  private readonly all: readonly TrackerListener[];

  constructor(fields: TrackerListener[]) {
    [this.l0, this.l1, this.l2, this.l3, this.l4, this.l5, this.l6, this.l7] = fields;
    this.all = fields;
  }

  statementStarted(session: SessionInfo, statement: StatementRecord): void {
    this.l0.statementStarted?.(session, statement);
    this.l1.statementStarted?.(session, statement);
    this.l2.statementStarted?.(session, statement);
    this.l3.statementStarted?.(session, statement);
    this.l4.statementStarted?.(session, statement);
    this.l5.statementStarted?.(session, statement);
    this.l6.statementStarted?.(session, statement);
    this.l7.statementStarted?.(session, statement);
  }

  statementFinished(session: SessionInfo, statement: StatementRecord): void {
    this.l0.statementFinished?.(session, statement);
    this.l1.statementFinished?.(session, statement);
    this.l2.statementFinished?.(session, statement);
    this.l3.statementFinished?.(session, statement);
    this.l4.statementFinished?.(session, statement);
    this.l5.statementFinished?.(session, statement);
    this.l6.statementFinished?.(session, statement);
    this.l7.statementFinished?.(session, statement);
  }

  transactionStarted(session: SessionInfo, transaction: TransactionRecord): void {
    this.l0.transactionStarted?.(session, transaction);
    this.l1.transactionStarted?.(session, transaction);
    this.l2.transactionStarted?.(session, transaction);
    this.l3.transactionStarted?.(session, transaction);
    this.l4.transactionStarted?.(session, transaction);
    this.l5.transactionStarted?.(session, transaction);
    this.l6.transactionStarted?.(session, transaction);
    this.l7.transactionStarted?.(session, transaction);
  }

  transactionEnded(session: SessionInfo, transaction: TransactionRecord): void {
    this.l0.transactionEnded?.(session, transaction);
    this.l1.transactionEnded?.(session, transaction);
    this.l2.transactionEnded?.(session, transaction);
    this.l3.transactionEnded?.(session, transaction);
    this.l4.transactionEnded?.(session, transaction);
    this.l5.transactionEnded?.(session, transaction);
    this.l6.transactionEnded?.(session, transaction);
    this.l7.transactionEnded?.(session, transaction);
  }

  ready(session: SessionInfo, status: TxStatus): void {
    this.l0.ready?.(session, status);
    this.l1.ready?.(session, status);
    this.l2.ready?.(session, status);
    this.l3.ready?.(session, status);
    this.l4.ready?.(session, status);
    this.l5.ready?.(session, status);
    this.l6.ready?.(session, status);
    this.l7.ready?.(session, status);
  }

  // Rarer events: a loop over the fields will do.

  savepoint(session: SessionInfo, op: SavepointOp, name: string, depth: number, transaction: TransactionRecord): void {
    for (const l of this.all) l.savepoint?.(session, op, name, depth, transaction);
  }

  requestStarted(session: SessionInfo, request: RequestInfo, previous: RequestInfo | null): void {
    for (const l of this.all) l.requestStarted?.(session, request, previous);
  }

  sessionError(session: SessionInfo, error: ErrorFields): void {
    for (const l of this.all) l.sessionError?.(session, error);
  }

  sessionStarted(session: SessionInfo): void {
    for (const l of this.all) l.sessionStarted?.(session);
  }

  sessionEnded(session: SessionInfo, clean: boolean, durationMs: number): void {
    for (const l of this.all) l.sessionEnded?.(session, clean, durationMs);
  }
}
