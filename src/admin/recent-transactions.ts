/**
 * `GET /transactions`: the last finished transactions with their statements.
 * A fixed-size ring of the tracker's own records: keeping one costs an array
 * store, and the JSON is built only when someone asks.
 */
import { summaryText } from '../tracker/transaction-ledger.js';
import type { SessionInfo, TrackerListener, TransactionRecord } from '../tracker/types.js';
import type { ShowSql } from './shown-sql.js';

export const RECENT_TRANSACTIONS = 100;

export interface TransactionView {
  id: string;
  sessionId: string;
  database: string;
  user: string;
  request: { id: string; traceId: string | null; route: string | null };
  startedAt: string;
  endedAt: string;
  durationMs: number;
  outcome: string | null;
  implicit: boolean;
  statements: number;
  writes: number;
  savepoints: { created: number; released: number; rolledBack: number; maxDepth: number };
  idleInTransactionMs: number;
  lockWaitMs: number;
  firstError: { code: string; message: string } | null;
  /** The first statements of the transaction (the tracker keeps up to 50). */
  statementLog: { seq: number; text: string | null; operation: string; commandTag: string | null; durationMs: number; errorCode: string | null }[];
}

export class RecentTransactions implements TrackerListener {
  // Two rings rather than one of pairs: no object per transaction.
  private readonly sessions: (SessionInfo | undefined)[];
  private readonly transactions: (TransactionRecord | undefined)[];
  private next = 0;

  constructor(readonly capacity = RECENT_TRANSACTIONS) {
    this.sessions = new Array(capacity);
    this.transactions = new Array(capacity);
  }

  transactionEnded(session: SessionInfo, tx: TransactionRecord): void {
    this.sessions[this.next] = session;
    this.transactions[this.next] = tx;
    this.next = (this.next + 1) % this.capacity;
  }

  /** The newest first, at most `limit`; SQL and error messages as the trace would hold them. */
  list(limit: number, sql: ShowSql, errorMessage: (message: string) => string = (message) => message): TransactionView[] {
    const out: TransactionView[] = [];
    for (let i = 1; i <= Math.min(limit, this.capacity); i++) {
      const at = (this.next - i + this.capacity) % this.capacity;
      const session = this.sessions[at];
      const tx = this.transactions[at];
      if (session === undefined || tx === undefined) break;
      out.push(view(session, tx, sql, errorMessage));
    }
    return out;
  }
}

function view(session: SessionInfo, tx: TransactionRecord, sql: ShowSql, errorMessage: (message: string) => string): TransactionView {
  return {
    id: tx.id,
    sessionId: tx.sessionId,
    database: session.database,
    user: session.user,
    request: { id: tx.request.id, traceId: tx.request.traceId, route: tx.request.route },
    startedAt: new Date(tx.startedAt).toISOString(),
    endedAt: new Date(tx.endedAt).toISOString(),
    durationMs: round(tx.durationMs),
    outcome: tx.outcome,
    implicit: tx.implicit,
    statements: tx.statements,
    writes: tx.writes,
    savepoints: {
      created: tx.savepointsCreated,
      released: tx.savepointsReleased,
      rolledBack: tx.savepointsRolledBack,
      maxDepth: tx.maxSavepointDepth,
    },
    idleInTransactionMs: round(tx.idleInTransactionMs),
    lockWaitMs: round(tx.lockWaitMs),
    firstError: tx.firstError && { code: tx.firstError.code, message: errorMessage(tx.firstError.message) },
    statementLog: tx.statementLog.map((s) => ({
      seq: s.seq,
      text: sql(summaryText(s.text)),
      operation: s.info.operation,
      commandTag: s.commandTag,
      durationMs: round(s.durationMs),
      errorCode: s.error?.code ?? null,
    })),
  };
}

function round(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}
