/**
 * Turns every `40P01 deadlock detected` a proxied statement receives into a
 * `deadlock` trace record naming each process of the cycle, mapped to its
 * txproxy session, transaction, route and last statement where txproxy
 * proxies it, and counts the sessions involved.
 *
 * It needs no server query: the error's DETAIL lists the cycle. It runs
 * synchronously as the error passes, while the other sessions of the cycle
 * are (nearly always) still in the transaction that took part.
 */
import type { Counter } from 'prom-client';
import type { TraceBus } from '../trace/trace-sink.js';
import type { TraceText } from '../trace/trace-text.js';
import type { SessionInfo, StatementRecord, TrackerListener } from '../tracker/types.js';
import { attribute, type SessionDirectory } from './attribution.js';
import { describeWait, parseDeadlockDetail, type DeadlockProcess } from './deadlock-detail.js';

const DEADLOCK_DETECTED = '40P01';

export interface DeadlockRecorderOptions {
  sessions: SessionDirectory;
  trace: TraceBus;
  traceText: TraceText;
  /** txproxy_deadlocks_total{database,role}. */
  deadlocks: Counter<'database' | 'role'>;
}

export class DeadlockRecorder implements TrackerListener {
  constructor(private readonly options: DeadlockRecorderOptions) {}

  statementFinished(session: SessionInfo, statement: StatementRecord): void {
    if (statement.error === null || statement.error.code !== DEADLOCK_DETECTED) return;
    const cycle = parseDeadlockDetail(statement.error.detail ?? '');
    const { deadlocks, trace } = this.options;
    deadlocks.inc({ database: session.database, role: 'victim' });
    const processes = cycle.map((process) => this.describe(process, session, statement));
    if (!cycle.some((p) => p.pid === session.backendPid)) {
      // A DETAIL in another language, or cut short: the victim is still known.
      processes.unshift(this.victim(session, statement, null));
    }
    for (const process of processes) {
      if (process.victim || process['session.id'] === null) continue;
      const database = this.options.sessions.byBackendPid(process['pg.backend_pid'])?.info.database ?? session.database;
      deadlocks.inc({ database, role: 'participant' });
    }
    if (!trace.active) return;
    const record: Record<string, unknown> = {
      kind: 'deadlock',
      time: new Date().toISOString(),
      'session.id': session.id,
      'transaction.id': statement.transactionId,
      'db.namespace': session.database,
      'pg.backend_pid': session.backendPid,
      processes,
    };
    this.options.traceText.addRequest(record, statement.request);
    trace.write(record);
  }

  private describe(process: DeadlockProcess, victimSession: SessionInfo, statement: StatementRecord): ProcessRecord {
    if (process.pid === victimSession.backendPid) return this.victim(victimSession, statement, process);
    const owner = this.options.sessions.byBackendPid(process.pid);
    const attribution = owner !== undefined ? attribute(owner) : null;
    // Outside txproxy, the server log's form of the DETAIL may still carry the query.
    const last = attribution !== null ? attribution.lastStatement : process.query;
    return {
      'pg.backend_pid': process.pid,
      waits_for: describeWait(process),
      blocked_by_pid: process.blockedBy,
      'session.id': attribution?.sessionId ?? null,
      // The transaction that took part: an autocommit one may have ended as the victim's aborted.
      'transaction.id': attribution?.lastTransactionId ?? null,
      'http.route': attribution?.route ?? null,
      last_statement: this.sql(last),
      victim: false,
    };
  }

  private victim(session: SessionInfo, statement: StatementRecord, process: DeadlockProcess | null): ProcessRecord {
    return {
      'pg.backend_pid': session.backendPid,
      waits_for: process !== null ? describeWait(process) : null,
      blocked_by_pid: process?.blockedBy ?? null,
      'session.id': session.id,
      'transaction.id': statement.transactionId,
      'http.route': statement.request.route,
      last_statement: this.sql(statement.text),
      victim: true,
    };
  }

  private sql(text: string | null): string | null {
    return text === null ? null : (this.options.traceText.sql(text) ?? null);
  }
}

interface ProcessRecord {
  'pg.backend_pid': number;
  waits_for: string | null;
  blocked_by_pid: number | null;
  'session.id': string | null;
  'transaction.id': string | null;
  'http.route': string | null;
  last_statement: string | null;
  victim: boolean;
}
