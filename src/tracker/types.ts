/**
 * The domain events the tracker emits. Consumers (trace writer, metrics,
 * lock monitor, admin API, policy) read these records; none of them parses
 * protocol bytes.
 */
import type { TxStatus } from '../protocol/codes.js';
import type { ErrorFields } from '../protocol/decode.js';
import type { StatementInfo } from '../sql/classify.js';
import type { SqlCommenterTags } from '../sql/sqlcommenter.js';

export interface SessionInfo {
  id: string;
  user: string;
  database: string;
  applicationName: string;
  clientAddress: string;
  /** Wall-clock start, epoch ms. */
  startedAt: number;
  /** From BackendKeyData; 0 until authentication completes. */
  backendPid: number;
  replication: boolean;
  /** Listeners' own state for the session (session-slot.ts); a session made by txproxy starts with []. */
  slots?: unknown[];
}

/**
 * A request: what a policy speaks about. By default the whole client session;
 * a new sqlcommenter trace id on the same session starts a new one.
 */
export interface RequestInfo {
  /** `<session id>.r<seq>` */
  id: string;
  traceId: string | null;
  route: string | null;
  controller: string | null;
  action: string | null;
  application: string | null;
  framework: string | null;
  tags: SqlCommenterTags | null;
}

export type Protocol = 'simple' | 'extended';

export interface StatementRecord {
  /** Position of the statement in its session, from 1. */
  seq: number;
  sessionId: string;
  transactionId: string | null;
  protocol: Protocol;
  /** SQL text with any sqlcommenter comment removed. */
  text: string;
  /** How the statement classifies. Its own `text` may be its shape's (statement-record.ts): read the record's. */
  info: StatementInfo;
  /** Prepared statement name (extended protocol); '' is the unnamed one. */
  statementName: string | null;
  request: RequestInfo;
  /** When the server began on it, epoch ms. */
  startedAt: number;
  /** Monotonic start (performance.now()), for durations. */
  startMono: number;
  durationMs: number;
  txStatusBefore: TxStatus;
  txStatusAfter: TxStatus | null;
  commandTag: string | null;
  /** Rows returned or affected: from the command tag, else the DataRows counted. */
  rows: number | null;
  /** DataRow messages seen. */
  dataRows: number;
  error: ErrorFields | null;
  /** Savepoint depth when the statement finished. */
  savepointDepth: number;
  lockWaitMs: number;
  /** Execute stopped at its row limit (PortalSuspended); the portal can go on. */
  suspended: boolean;
  /** The session ended before the server answered. */
  interrupted: boolean;
  /** COPY FROM STDIN / TO STDOUT ran through this statement. */
  copy: 'in' | 'out' | 'both' | null;
  /**
   * Set by a policy when txproxy sent the statement: `proxy` on its own
   * (its BEGIN/COMMIT around a request), `rewritten` in place of the
   * client's statement `clientText` (the client's BEGIN as a SAVEPOINT).
   * Unset: the client's statement as the client sent it.
   */
  origin?: 'proxy' | 'rewritten';
  clientText?: string;
}

export type TransactionOutcome = 'commit' | 'rollback' | 'failed' | 'disconnect' | 'prepared';

export interface TransactionRecord {
  /** `<session id>.t<seq>` */
  id: string;
  sessionId: string;
  startedAt: number;
  startMono: number;
  endedAt: number;
  durationMs: number;
  outcome: TransactionOutcome | null;
  /** Autocommit statement, multi-statement Query or extended batch up to Sync. */
  implicit: boolean;
  statements: number;
  writes: number;
  savepointsCreated: number;
  savepointsReleased: number;
  savepointsRolledBack: number;
  maxSavepointDepth: number;
  idleInTransactionMs: number;
  lockWaitMs: number;
  firstError: { code: string; message: string } | null;
  /** An error left the transaction failed (status E) and not yet recovered by ROLLBACK TO. */
  failed: boolean;
  request: RequestInfo;
  /**
   * The first statements, for attribution (bounded): the statements' own
   * records, which say all a summary would, so none is made per statement.
   */
  statementLog: StatementRecord[];
}

export type SavepointOp = 'create' | 'release' | 'rollback_to';

/** Receives the tracker's events. Every method is optional. */
export interface TrackerListener {
  statementStarted?(session: SessionInfo, statement: StatementRecord): void;
  statementFinished?(session: SessionInfo, statement: StatementRecord): void;
  transactionStarted?(session: SessionInfo, transaction: TransactionRecord): void;
  transactionEnded?(session: SessionInfo, transaction: TransactionRecord): void;
  savepoint?(session: SessionInfo, op: SavepointOp, name: string, depth: number, transaction: TransactionRecord): void;
  requestStarted?(session: SessionInfo, request: RequestInfo, previous: RequestInfo | null): void;
  /** ReadyForQuery: the server's transaction status and nothing in flight before it. */
  ready?(session: SessionInfo, status: TxStatus): void;
  /** An ErrorResponse that belongs to no statement (e.g. FATAL at shutdown). */
  sessionError?(session: SessionInfo, error: ErrorFields): void;
  sessionStarted?(session: SessionInfo): void;
  /** `durationMs`: since the client connected, from the monotonic clock. */
  sessionEnded?(session: SessionInfo, clean: boolean, durationMs: number): void;
}
