/**
 * What the observers of a client session read of it: the session gauges,
 * the admin API's `/sessions`, the lock monitor and deadlock attribution.
 *
 * They read a session when asked (a scrape, a request, a sample), never per
 * message, and change nothing: a narrow read-only view keeps them from
 * depending on how a session moves bytes or where its server connection
 * comes from (its own, or one lent by a pool). src/proxy's Session
 * implements it.
 */
import type { TxStatus } from '../protocol/codes.js';
import type { RequestInfo, SessionInfo, StatementRecord, TransactionRecord } from '../tracker/types.js';

/** Where a session is in its life: `ready` from the first ReadyForQuery on. */
export type SessionState = 'connecting' | 'authenticating' | 'ready' | 'closed';

/** The tracker's state of a session, as the tracker (src/tracker) keeps it. */
export interface TrackerView {
  /** Transaction status the server reported last. */
  readonly status: TxStatus;
  /** Messages sent and not yet answered. */
  readonly pending: number;
  /** The open transaction, implicit ones included. */
  readonly transaction: TransactionRecord | null;
  /** What the server runs now. */
  readonly activeStatement: StatementRecord | null;
  /** The statement finished last. */
  readonly lastStatement: StatementRecord | null;
  /** The request the session is in. */
  readonly request: RequestInfo;
  readonly savepointDepth: number;
}

export interface SessionView {
  readonly info: Readonly<SessionInfo>;
  readonly state: SessionState;
  /** Meaningful once `state` is `ready`. */
  readonly tracker: TrackerView;
  /**
   * The server backend the session holds: its own connection's, or the
   * pooled connection's it borrowed (in transaction pooling, the one it
   * held last); 0 before login.
   */
  readonly backendPid: number;
  /** The server's ParameterStatus values (server_version, client_encoding, …). */
  readonly parameters: ReadonlyMap<string, string>;
  /** Transaction status the server reported last. */
  readonly txStatus: TxStatus;
  /** Transaction pooling: why the client is held on its server now (empty: it is not). */
  readonly pinReasons: readonly string[];
}
