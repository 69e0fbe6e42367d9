/**
 * `GET /sessions`: every client session as JSON, read from the live session
 * objects at request time (txproxy's answer to `pg_stat_activity`).
 */
import { performance } from 'node:perf_hooks';
import { sessionActivity, type SessionActivity } from '../metrics/session-activity.js';
import type { SessionView } from '../sessions/session-view.js';
import type { RequestInfo } from '../tracker/types.js';
import type { ShowSql } from './shown-sql.js';

/** A lock wait in progress, as the lock monitor reports it. */
export interface LockWaitView {
  /** ISO 8601 */
  since: string;
  waitedMs: number;
  lockType: string;
  mode: string;
  relation: string | null;
  blockedBy: { pid: number; sessionId: string | null; transactionId: string | null; route: string | null }[];
}

export type LockWaitOf = (sessionId: string) => LockWaitView | null;

/** One session as `/sessions` answers it. */
export interface SessionJson {
  id: string;
  user: string;
  database: string;
  application: string;
  clientAddress: string;
  backendPid: number;
  state: SessionActivity;
  startedAt: string;
  request: { id: string; traceId: string | null; route: string | null } | null;
  transaction: { id: string; startedAt: string; ageMs: number; implicit: boolean; statements: number; writes: number; failed: boolean } | null;
  /** What the server runs now. */
  statement: { seq: number; text: string | null; operation: string; startedAt: string; runningMs: number } | null;
  /** The statement finished last. */
  lastStatement: { seq: number; text: string | null; operation: string; commandTag: string | null; durationMs: number; errorCode: string | null } | null;
  savepointDepth: number;
  lockWait: LockWaitView | null;
  /** Transaction pooling: why the client is held on its server connection (empty: it is not). */
  pins: string[];
}

export function viewSession(session: SessionView, sql: ShowSql, lockWaitOf: LockWaitOf | null): SessionJson {
  const now = performance.now();
  const info = session.info;
  const ready = session.state === 'ready';
  const tracker = session.tracker;
  const tx = ready ? tracker.transaction : null;
  const active = ready ? tracker.activeStatement : null;
  const last = ready ? tracker.lastStatement : null;
  return {
    id: info.id,
    user: info.user,
    database: info.database,
    application: info.applicationName,
    clientAddress: info.clientAddress,
    backendPid: session.backendPid,
    state: sessionActivity(session),
    startedAt: new Date(info.startedAt).toISOString(),
    request: ready ? viewRequest(tracker.request) : null,
    transaction:
      tx === null
        ? null
        : {
            id: tx.id,
            startedAt: new Date(tx.startedAt).toISOString(),
            ageMs: round(now - tx.startMono),
            implicit: tx.implicit,
            statements: tx.statements,
            writes: tx.writes,
            failed: tx.failed,
          },
    statement:
      active === null
        ? null
        : {
            seq: active.seq,
            text: sql(active.text, active.info),
            operation: active.info.operation,
            startedAt: new Date(active.startedAt).toISOString(),
            runningMs: round(now - active.startMono),
          },
    lastStatement:
      last === null
        ? null
        : {
            seq: last.seq,
            text: sql(last.text, last.info),
            operation: last.info.operation,
            commandTag: last.commandTag,
            durationMs: round(last.durationMs),
            errorCode: last.error?.code ?? null,
          },
    savepointDepth: ready ? tracker.savepointDepth : 0,
    lockWait: lockWaitOf?.(info.id) ?? null,
    pins: [...session.pinReasons],
  };
}

function viewRequest(request: RequestInfo): SessionJson['request'] {
  return { id: request.id, traceId: request.traceId, route: request.route };
}

function round(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}
