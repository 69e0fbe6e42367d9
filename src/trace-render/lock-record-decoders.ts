/** Decoders of the lock monitor's records: lock waits (with their blockers) and deadlocks. */
import { attribution, num, objects, sessionIdOf, sql, str, timeOf, transactionIdOf, type Json } from './record-fields.js';
import type { Blocker, DeadlockEvent, LockWaitEvent } from './record-types.js';

function decodeBlocker(b: Json): Blocker {
  const statements = Array.isArray(b.statements)
    ? objects(b, 'statements').map((s) => ({ seq: num(s, 'seq') ?? 0, text: sql(s, 'text') ?? '' }))
    : null;
  return {
    pid: num(b, 'pg.backend_pid'),
    sessionId: str(b, 'session.id'),
    transactionId: str(b, 'transaction.id'),
    route: str(b, 'http.route'),
    statements,
    applicationName: str(b, 'application.name'),
    state: str(b, 'state'),
    query: sql(b, 'query'),
  };
}

export function decodeLockWait(r: Json): LockWaitEvent {
  return {
    kind: 'lock_wait',
    time: timeOf(r),
    end: str(r, 'end'),
    durationMs: num(r, 'duration_ms') ?? 0,
    sessionId: sessionIdOf(r),
    transactionId: transactionIdOf(r),
    seq: num(r, 'statement.seq'),
    backendPid: num(r, 'pg.backend_pid'),
    text: sql(r, 'db.query.text'),
    lockType: str(r, 'lock.type'),
    lockMode: str(r, 'lock.mode'),
    relation: str(r, 'lock.relation'),
    blockedBy: objects(r, 'blocked_by').map(decodeBlocker),
    ...attribution(r),
  };
}

export function decodeDeadlock(r: Json): DeadlockEvent {
  return {
    kind: 'deadlock',
    time: timeOf(r),
    sessionId: sessionIdOf(r),
    transactionId: transactionIdOf(r),
    backendPid: num(r, 'pg.backend_pid'),
    processes: objects(r, 'processes').map((p) => ({
      pid: num(p, 'pg.backend_pid'),
      waitsFor: str(p, 'waits_for'),
      blockedByPid: num(p, 'blocked_by_pid'),
      sessionId: str(p, 'session.id'),
      transactionId: str(p, 'transaction.id'),
      route: str(p, 'http.route'),
      lastStatement: sql(p, 'last_statement'),
      victim: p.victim === true,
    })),
    ...attribution(r),
  };
}
