/**
 * Invariants every trace must satisfy, whatever the client did. End-to-end
 * tests run them over everything txproxy recorded, so a statement that lost
 * its transaction, or a transaction whose statement count disagrees with the
 * statements that name it, fails the test that produced it.
 */
import type { Test } from 'tap';
import type { TestProxy } from './proxy.js';

type TraceRecord = Record<string, unknown>;

/**
 * - every statement that ran inside a transaction carries its id, and that
 *   transaction was recorded (in the tracker's events and the NDJSON trace);
 * - the only statements without one are transaction control that found no
 *   transaction (COMMIT, ROLLBACK, SAVEPOINT … outside a block);
 * - a transaction's `statements` equals the statements that name it;
 * - statement numbers grow strictly within each session.
 */
export function checkTraceInvariants(t: Test, proxy: TestProxy, options: { sessionIds?: string[] } = {}): void {
  const only = options.sessionIds === undefined ? () => true : (id: string) => options.sessionIds!.includes(id);
  const statements = proxy.statements.filter((s) => only(s.sessionId));
  const transactions = proxy.transactions.filter((x) => only(x.sessionId));
  const txById = new Map(transactions.map((x) => [x.id, x]));

  const orphans = statements.filter((s) => s.transactionId === null && !(s.info.txControl !== null && s.txStatusBefore === 'I'));
  t.same(
    orphans.map((s) => s.text),
    [],
    'every statement outside transaction control ran in a recorded transaction',
  );
  const unknown = statements.filter((s) => s.transactionId !== null && !txById.has(s.transactionId) && !s.interrupted);
  t.same(
    unknown.map((s) => `${s.transactionId}: ${s.text}`),
    [],
    'every transaction id on a statement names a transaction that ended',
  );

  const counted = new Map<string, number>();
  for (const s of statements) if (s.transactionId !== null) counted.set(s.transactionId, (counted.get(s.transactionId) ?? 0) + 1);
  const mismatched = transactions.filter((x) => x.statements !== (counted.get(x.id) ?? 0));
  t.same(
    mismatched.map((x) => `${x.id}: says ${x.statements}, statements naming it ${counted.get(x.id) ?? 0}`),
    [],
    "each transaction's statement count equals the statements that name it",
  );

  const lastSeq = new Map<string, number>();
  const disorder: string[] = [];
  for (const s of statements) {
    const previous = lastSeq.get(s.sessionId) ?? 0;
    if (s.seq <= previous) disorder.push(`${s.sessionId}: ${s.seq} after ${previous}`);
    lastSeq.set(s.sessionId, s.seq);
  }
  t.same(disorder, [], 'statements are reported in the order they ran');

  const traced = proxy.trace.records.filter((r) => r.kind === 'transaction' && only(String(r['session.id'])));
  t.same(
    traced.map((r) => r['transaction.id']).sort(),
    transactions.map((x) => x.id).sort(),
    'the NDJSON trace holds one transaction record per transaction',
  );
}

/** The trace's statement records (NDJSON objects) of one session, in order. */
export function statementRecords(proxy: TestProxy, sessionId?: string): TraceRecord[] {
  return proxy.trace.records.filter((r) => r.kind === 'statement' && (sessionId === undefined || r['session.id'] === sessionId));
}

/** The trace's transaction records (NDJSON objects) of one session, in order. */
export function transactionRecords(proxy: TestProxy, sessionId?: string): TraceRecord[] {
  return proxy.trace.records.filter((r) => r.kind === 'transaction' && (sessionId === undefined || r['session.id'] === sessionId));
}

/** Forgets everything recorded so far (between subtests). */
export function resetRecords(proxy: TestProxy): void {
  proxy.statements.length = 0;
  proxy.transactions.length = 0;
  proxy.trace.records.length = 0;
}

/** The txproxy session id of the open session whose server backend is `pid`. */
export function sessionIdOf(proxy: TestProxy, pid: number): string {
  for (const session of proxy.app.server.sessions) if (session.backendPid === pid) return session.info.id;
  throw new Error(`no open session with backend pid ${pid}`);
}
