/**
 * Span events from the trace records that other parts of txproxy write on
 * the trace bus: `lock_wait` (lock monitor), `deadlock` (deadlock recorder)
 * and `policy` (policy service). These are rare (a wait past the lock
 * monitor's threshold, a deadlock, a policy decision); every other line on
 * the bus is passed over by its first characters, unread.
 *
 * The records are already in their trace form: SQL text and messages are
 * as `trace.sql` allows, so the events carry no more than the trace does.
 */
import type { Attributes } from '@opentelemetry/api';
import type { TraceSink } from '../trace/trace-sink.js';
import type { PendingEvent, TransactionSpans } from './transaction-spans.js';

const LOCK_WAIT = '{"kind":"lock_wait"';
const DEADLOCK = '{"kind":"deadlock"';
const POLICY = '{"kind":"policy"';

type TraceRecord = Record<string, unknown>;

/** A trace sink that hands the records it wants to the transaction spans as events. */
export function recordEventSink(spans: TransactionSpans): TraceSink {
  return {
    writeLine(line: string): void {
      // Records are built with `kind` first: one comparison skips the statement and transaction lines.
      if (line.charCodeAt(9) !== 0x6c /* l */ && line.charCodeAt(9) !== 0x64 /* d */ && line.charCodeAt(9) !== 0x70 /* p */) return;
      // The writers of these records call this synchronously: an unreadable record is skipped, never thrown back at them.
      try {
        if (line.startsWith(LOCK_WAIT)) lockWait(spans, JSON.parse(line) as TraceRecord);
        else if (line.startsWith(DEADLOCK)) deadlock(spans, JSON.parse(line) as TraceRecord);
        else if (line.startsWith(POLICY)) policy(spans, JSON.parse(line) as TraceRecord);
      } catch {
        // Nothing to add to a span.
      }
    },
    async flush(): Promise<void> {},
    wantsTranscript: false,
  };
}

function lockWait(spans: TransactionSpans, r: TraceRecord): void {
  const transactionId = str(r['transaction.id']);
  if (transactionId === null) return;
  const blockers = Array.isArray(r.blocked_by) ? (r.blocked_by as TraceRecord[]) : [];
  const attributes: Attributes = {
    'txproxy.lock_wait.duration_ms': num(r.duration_ms) ?? 0,
    'txproxy.statement.seq': num(r['statement.seq']) ?? 0,
    'txproxy.lock.type': str(r['lock.type']) ?? '',
    'txproxy.lock.mode': str(r['lock.mode']) ?? '',
    'txproxy.lock.relation': str(r['lock.relation']) ?? '',
    // One entry per blocker, in the same order in each array; '' where txproxy does not know it.
    'txproxy.blocker.pids': blockers.map((b) => num(b['pg.backend_pid']) ?? 0),
    'txproxy.blocker.session_ids': blockers.map((b) => str(b['session.id']) ?? ''),
    'txproxy.blocker.transaction_ids': blockers.map((b) => str(b['transaction.id']) ?? ''),
    'txproxy.blocker.routes': blockers.map((b) => str(b['http.route']) ?? ''),
    'txproxy.blocker.application_names': blockers.map((b) => str(b['application.name']) ?? ''),
  };
  spans.eventForTransaction(transactionId, { name: 'txproxy.lock_wait', time: timeOf(r.time), attributes });
}

function deadlock(spans: TransactionSpans, r: TraceRecord): void {
  const processes = Array.isArray(r.processes) ? (r.processes as TraceRecord[]) : [];
  const attributes: Attributes = {
    'txproxy.deadlock.pids': processes.map((p) => num(p['pg.backend_pid']) ?? 0),
    'txproxy.deadlock.waits_for': processes.map((p) => str(p.waits_for) ?? ''),
    'txproxy.deadlock.blocked_by_pids': processes.map((p) => num(p.blocked_by_pid) ?? 0),
    'txproxy.deadlock.session_ids': processes.map((p) => str(p['session.id']) ?? ''),
    'txproxy.deadlock.transaction_ids': processes.map((p) => str(p['transaction.id']) ?? ''),
    'txproxy.deadlock.routes': processes.map((p) => str(p['http.route']) ?? ''),
    'txproxy.deadlock.victims': processes.map((p) => p.victim === true),
  };
  const time = timeOf(r.time);
  const victimTransaction = str(r['transaction.id']);
  if (victimTransaction !== null) {
    spans.eventForTransaction(victimTransaction, { name: 'txproxy.deadlock', time, attributes: { ...attributes, 'txproxy.deadlock.role': 'victim' } });
  }
  // The other transactions of the cycle that txproxy proxies go on (and may commit): their spans say they took part.
  for (const p of processes) {
    const id = str(p['transaction.id']);
    if (p.victim === true || id === null || id === victimTransaction) continue;
    spans.eventForTransaction(id, { name: 'txproxy.deadlock', time, attributes: { ...attributes, 'txproxy.deadlock.role': 'participant' } });
  }
}

function policy(spans: TransactionSpans, r: TraceRecord): void {
  const attributes: Attributes = {
    'txproxy.policy.rule': str(r.rule) ?? '',
    'txproxy.policy.mode': str(r.mode) ?? '',
    'txproxy.policy.action': str(r.action) ?? '',
    'txproxy.policy.decision': str(r.decision) ?? '',
    'txproxy.policy.message': str(r.message) ?? '',
  };
  const sqlstate = str(r.sqlstate);
  if (sqlstate !== null) attributes['db.response.status_code'] = sqlstate;
  const sql = str(r['db.query.text']);
  if (sql !== null) attributes['db.query.text'] = sql;
  const event: PendingEvent = { name: 'txproxy.policy', time: timeOf(r.time), attributes };
  const transactionId = str(r['transaction.id']);
  if (transactionId !== null && spans.eventForTransaction(transactionId, event)) return;
  // Refused before its transaction began (or after the one named ended): the session's current or next one.
  const sessionId = str(r['session.id']);
  if (sessionId !== null) spans.eventForSession(sessionId, event);
}

function str(value: unknown): string | null {
  return typeof value === 'string' ? value : null;
}

function num(value: unknown): number | null {
  return typeof value === 'number' ? value : null;
}

function timeOf(value: unknown): number {
  const ms = typeof value === 'string' ? Date.parse(value) : NaN;
  return Number.isFinite(ms) ? ms : Date.now();
}
