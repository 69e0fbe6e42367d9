/**
 * One lock wait as the monitor knows it, and its two reports: the
 * `lock_wait` trace record written when it ends, and the live view the
 * admin API shows for a session that waits now.
 */
import type { TraceText } from '../trace/trace-text.js';
import type { StatementRecord } from '../tracker/types.js';
import type { LockWaitView } from '../admin/sessions-view.js';
import type { SessionAttribution, TrackedSession } from './attribution.js';

export interface Blocker {
  pid: number;
  backendStart: string | null;
  /** What txproxy knows of it; null for a backend outside txproxy. */
  session: SessionAttribution | null;
  /** From pg_stat_activity; null if the backend was gone before it was read. */
  applicationName: string | null;
  state: string | null;
  query: string | null;
}

export interface LockWait {
  session: TrackedSession;
  statement: StatementRecord;
  /** The server's waitstart (its clock, epoch ms): identifies the wait across samples. */
  serverStart: number | null;
  /** Start on txproxy's clock, epoch ms. */
  start: number;
  /** The last sample that saw it, txproxy's clock. */
  lastSeen: number;
  lockType: string;
  mode: string;
  relation: string | null;
  /** Every backend seen blocking it, by pid@backend_start, first seen first. */
  blockers: Map<string, Blocker>;
}


export function lockWaitView(wait: LockWait, now: number): LockWaitView {
  return {
    since: new Date(wait.start).toISOString(),
    waitedMs: Math.max(0, now - wait.start),
    lockType: wait.lockType,
    mode: wait.mode,
    relation: wait.relation,
    blockedBy: [...wait.blockers.values()].map((b) => ({
      pid: b.pid,
      sessionId: b.session?.sessionId ?? null,
      transactionId: b.session?.transactionId ?? null,
      route: b.session?.route ?? null,
    })),
  };
}

export function lockWaitRecord(wait: LockWait, end: number, durationMs: number, text: TraceText): Record<string, unknown> {
  const { session, statement } = wait;
  const record: Record<string, unknown> = {
    kind: 'lock_wait',
    time: new Date(wait.start).toISOString(),
    end: new Date(end).toISOString(),
    duration_ms: round(durationMs),
    'session.id': session.info.id,
    'transaction.id': statement.transactionId,
    'statement.seq': statement.seq,
    'db.namespace': session.info.database,
    'pg.backend_pid': session.info.backendPid,
    'db.query.text': text.sql(statement.text, statement.info),
    'lock.type': wait.lockType,
    'lock.mode': wait.mode,
    'lock.relation': wait.relation,
    blocked_by: [...wait.blockers.values()].map((b) => blockerRecord(b, text)),
  };
  text.addRequest(record, statement.request);
  return record;
}

function blockerRecord(b: Blocker, text: TraceText): Record<string, unknown> {
  return {
    'pg.backend_pid': b.pid,
    'session.id': b.session?.sessionId ?? null,
    'transaction.id': b.session?.transactionId ?? null,
    'http.route': b.session?.route ?? null,
    statements: b.session?.statements.map((s) => ({ seq: s.seq, text: text.sql(s.text) })) ?? null,
    'application.name': b.applicationName,
    state: b.state,
    // A txproxy session's SQL is in `statements`; the server's copy would repeat it.
    query: b.session === null && b.query !== null ? (text.sql(b.query) ?? null) : null,
  };
}

function round(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}
