/**
 * Maps a server backend to what txproxy knows of it: the client session
 * that owns it, the transaction it is in, the route of its request and the
 * statements that transaction ran so far. Used for the blockers of a lock
 * wait and the processes of a deadlock.
 */
import type { SessionView, TrackerView } from '../sessions/session-view.js';
import { summaryText } from '../tracker/transaction-ledger.js';
import type { StatementRecord } from '../tracker/types.js';

/**
 * What the lock monitor reads of a live session (its read-only view), and
 * the one thing it tells the tracker: how long a statement waited for a
 * lock, so the statement's and its transaction's records carry it.
 */
export interface TrackedSession extends Pick<SessionView, 'info' | 'state'> {
  readonly tracker: TrackerView & { addLockWait(ms: number, statement?: StatementRecord | null): void };
}

/** The live sessions, as the proxy server holds them. */
export interface SessionDirectory {
  sessions(): Iterable<TrackedSession>;
  /** The live session whose server connection has this backend pid. */
  byBackendPid(pid: number): TrackedSession | undefined;
}

export interface StatementRef {
  seq: number;
  text: string;
}

export interface SessionAttribution {
  sessionId: string;
  transactionId: string | null;
  route: string | null;
  /** The statements of the current transaction so far (bounded, as the tracker keeps them), the running one last. */
  statements: StatementRef[];
  /** The running statement, else the last one the session finished (its transaction may be over). */
  lastStatement: string | null;
  /** The transaction of `lastStatement`. */
  lastTransactionId: string | null;
}

/** A snapshot: the session goes on, the snapshot keeps what it was doing now. */
export function attribute(session: TrackedSession): SessionAttribution {
  const tracker = session.tracker;
  const tx = tracker.transaction;
  const active = tracker.activeStatement;
  const statements: StatementRef[] = tx === null ? [] : tx.statementLog.map((s) => ({ seq: s.seq, text: summaryText(s.text) }));
  if (active !== null && active.seq > 0 && (tx === null || active.transactionId === tx.id)) {
    statements.push({ seq: active.seq, text: active.text });
  }
  const last = active ?? tracker.lastStatement;
  return {
    sessionId: session.info.id,
    transactionId: tx?.id ?? null,
    route: routeOf(session),
    statements,
    lastStatement: last?.text ?? null,
    lastTransactionId: last?.transactionId ?? null,
  };
}

/**
 * The route of the session's transaction. A request is named by the first
 * tagged statement, which often follows an untagged BEGIN (drivers send
 * BEGIN themselves): the transaction then still holds the request as it was
 * before the tags, and the tracker's current request, same id, has them.
 */
function routeOf(session: TrackedSession): string | null {
  const tracker = session.tracker;
  const tx = tracker.transaction;
  if (tx === null || tx.request.id === tracker.request.id) return tracker.request.route;
  return tx.request.route;
}
