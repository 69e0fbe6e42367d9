/**
 * Tail sampling of the trace (`trace.keep`): the records of a transaction
 * are held until it is known whether the trace keeps it, then written or
 * dropped together. keep-rules.ts has the decision table; this module
 * holds the records, per session, and applies it.
 *
 * - The sample draw is made when a transaction's first record comes: one
 *   the draw picks is written as it runs, nothing held. The others are held
 *   and kept as soon as one of their records shows a reason (an error, a
 *   lock wait, a deadlock, a policy decision), or at their end (slow,
 *   failed, not atomic); else dropped at their end.
 * - A transaction holds at most `maxHeld` records. At that point it is
 *   decided early: kept if the draw picked it or it already showed a
 *   reason, else its held records are dropped, and after that only its
 *   records that are a reason themselves are written (an error, a lock
 *   wait, a deadlock, a policy decision), and its transaction record if it
 *   ends up kept, with `statements_dropped`.
 * - Records that come after a transaction's own record (a policy's warning
 *   about the request) follow its decision; one that is itself a reason
 *   still brings the dropped transaction back, while it is the session's
 *   last one.
 * - A request's first autocommit transaction with writes, when dropped, is
 *   kept aside until the request ends: a second one makes the request not
 *   atomic, and both are written.
 * - Records of no transaction (session, dry_run) are written at once.
 */
import { drawSample, keeps, recordSignal, Signal, transactionSignals, type KeepRules } from './keep-rules.js';
import type { StatementRecord, TransactionRecord } from '../tracker/types.js';

const enum Fate {
  /** Records are held until the decision. */
  Holding,
  /** Kept: held records were written, the rest are written as they come. */
  Kept,
  /** Dropped at its end; its records stay in memory a little longer, to be brought back. */
  Dropped,
  /** Dropped early (too many records held): only records that are a reason themselves are written. */
  DroppedEarly,
}

interface HeldTransaction {
  id: string;
  fate: Fate;
  signals: number;
  lines: string[];
  /** Statement records among `lines`, and those dropped early. */
  statementsHeld: number;
  statementsDropped: number;
}

interface SessionState {
  /** The transaction in progress (its first record has come, its transaction record not yet). */
  current: HeldTransaction | null;
  /** The one that ended last, for records that follow its transaction record. */
  last: HeldTransaction | null;
  /** Signals of records that named no transaction: they go to the session's next one. */
  pending: number;
  /** The request autocommit writes are counted in, and how many committed so far. */
  requestId: string | null;
  requestWrites: number;
  /** The request's first autocommit transaction with writes, if it was dropped. */
  firstWrite: HeldTransaction | null;
}

export interface TailSamplerCounts {
  kept: number;
  dropped: number;
}

export class TailSampler {
  private readonly sessions = new Map<string, SessionState>();
  /** Transactions decided so far (txproxy_trace_transactions_total). */
  readonly counts: TailSamplerCounts = { kept: 0, dropped: 0 };

  constructor(
    private readonly rules: KeepRules,
    private readonly out: (line: string) => void,
    private readonly random: () => number = Math.random,
  ) {}

  sessionStarted(sessionId: string): void {
    if (!this.sessions.has(sessionId)) this.sessions.set(sessionId, newSession());
  }

  /** The session is over: a transaction still open (it never got its record) is decided now. */
  sessionEnded(sessionId: string): void {
    const session = this.sessions.get(sessionId);
    if (session === undefined) return;
    this.sessions.delete(sessionId);
    const current = session.current;
    if (current !== null) this.settle(current);
  }

  statement(sessionId: string, s: StatementRecord, line: string): void {
    const id = s.transactionId;
    if (id === null) {
      this.out(line);
      return;
    }
    let session = this.sessions.get(sessionId);
    if (session === undefined) {
      session = newSession();
      this.sessions.set(sessionId, session);
    }
    let held = this.find(session, id);
    if (held === null) held = this.begin(session, id);
    let signals = 0;
    if (s.error !== null) signals |= Signal.Error;
    if (s.lockWaitMs > 0) signals |= Signal.LockWait;
    this.add(held, line, signals, true);
  }

  transaction(sessionId: string, t: TransactionRecord, line: string): void {
    let session = this.sessions.get(sessionId);
    if (session === undefined) {
      session = newSession();
      this.sessions.set(sessionId, session);
    }
    const held = this.find(session, t.id) ?? this.begin(session, t.id);
    if (session.current === held) session.current = null;
    session.last = held;
    let signals = transactionSignals(this.rules, t);
    const firstWrite = this.countWrites(session, t);
    if (session.requestWrites >= 2) {
      signals |= Signal.NotAtomic;
      // The request's first autocommit write comes back, ahead of this one.
      if (session.firstWrite !== null && session.firstWrite !== held) this.rescue(session.firstWrite);
      session.firstWrite = null;
    }
    held.signals |= signals;
    switch (held.fate) {
      case Fate.Holding:
        held.lines.push(line);
        this.settle(held);
        if (firstWrite && (held.fate as Fate) === Fate.Dropped) session.firstWrite = held;
        return;
      case Fate.Kept:
        this.out(line);
        return;
      case Fate.DroppedEarly:
        if (keeps(this.rules, held.signals, false)) {
          this.out(`${line.slice(0, -1)},"statements_dropped":${held.statementsDropped}}`);
          held.fate = Fate.Kept;
          this.counts.kept++;
        } else {
          held.fate = Fate.Dropped;
          this.counts.dropped++;
        }
        return;
      case Fate.Dropped:
        return;
    }
  }

  /** Any other record (lock_wait, deadlock, policy, session, dry_run), with its JSON text. */
  record(record: Record<string, unknown>, line: string): void {
    const sessionId = record['session.id'];
    const id = record['transaction.id'];
    const signal = recordSignal(record.kind);
    if (record.kind === 'deadlock') this.markDeadlocked(record.processes);
    const session = typeof sessionId === 'string' ? this.sessions.get(sessionId) : undefined;
    if (session === undefined || signal === 0) {
      if (session !== undefined && typeof id === 'string') {
        const held = this.find(session, id);
        if (held !== null) return this.add(held, line, 0, false);
      }
      this.out(line);
      return;
    }
    if (typeof id !== 'string') {
      // A policy decision before its transaction began: it counts for the next one.
      session.pending |= signal;
      this.out(line);
      return;
    }
    let held = this.find(session, id);
    if (held === null) {
      if (session.current !== null) {
        // Names a transaction this session is not in: nothing to hold it with.
        this.out(line);
        return;
      }
      held = this.begin(session, id);
    }
    this.add(held, line, signal, false);
  }

  // ------------------------------------------------------------- holding

  private find(session: SessionState, id: string): HeldTransaction | null {
    if (session.current !== null && session.current.id === id) return session.current;
    if (session.last !== null && session.last.id === id) return session.last;
    if (session.firstWrite !== null && session.firstWrite.id === id) return session.firstWrite;
    return null;
  }

  private begin(session: SessionState, id: string): HeldTransaction {
    // One that never got its transaction record is decided on what it showed.
    if (session.current !== null) this.settle(session.current);
    const kept = drawSample(this.rules.sample, this.random) || keeps(this.rules, session.pending, false);
    // The session's last transaction can no longer be brought back: its object and array serve again.
    const last = session.last;
    let held: HeldTransaction;
    if (last !== null && last !== session.firstWrite) {
      held = last;
      held.id = id;
      held.statementsHeld = 0;
      held.statementsDropped = 0;
      if (held.lines !== EMPTY) held.lines.length = 0;
      else if (!kept) held.lines = [];
    } else {
      held = { id, fate: Fate.Holding, signals: 0, lines: kept ? EMPTY : [], statementsHeld: 0, statementsDropped: 0 };
    }
    held.fate = kept ? Fate.Kept : Fate.Holding;
    held.signals = session.pending;
    if (kept) this.counts.kept++;
    session.pending = 0;
    session.current = held;
    session.last = null;
    return held;
  }

  private add(held: HeldTransaction, line: string, signals: number, statement: boolean): void {
    const reason = this.mark(held, signals);
    switch (held.fate) {
      case Fate.Kept:
        this.out(line);
        return;
      case Fate.Holding:
        held.lines.push(line);
        if (statement) held.statementsHeld++;
        if (held.lines.length >= this.rules.maxHeld) this.decideEarly(held);
        return;
      case Fate.Dropped:
        // A record after its end that is a reason itself (a policy's warning) brings it back.
        if (reason) {
          this.rescue(held);
          this.out(line);
        }
        return;
      case Fate.DroppedEarly:
        if (reason) this.out(line);
        else if (statement) held.statementsDropped++;
        return;
    }
  }

  /**
   * Adds signals to a transaction; true when one is a reason to keep it. One
   * still held is then written at once: there is no reason to hold it longer.
   */
  private mark(held: HeldTransaction, signals: number): boolean {
    held.signals |= signals;
    if ((signals & this.rules.keepMask) === 0) return false;
    if (held.fate === Fate.Holding) this.keep(held);
    return true;
  }

  private decideEarly(held: HeldTransaction): void {
    if (keeps(this.rules, held.signals, false)) {
      this.keep(held);
      return;
    }
    held.fate = Fate.DroppedEarly;
    held.statementsDropped += held.statementsHeld;
    held.statementsHeld = 0;
    held.lines.length = 0;
  }

  /** A transaction at its end (or its session's): kept or dropped with all it held. */
  private settle(held: HeldTransaction): void {
    if (held.fate === Fate.DroppedEarly) {
      held.fate = Fate.Dropped;
      this.counts.dropped++;
      return;
    }
    if (held.fate !== Fate.Holding) return;
    if (keeps(this.rules, held.signals, false)) {
      this.keep(held);
      return;
    }
    held.fate = Fate.Dropped;
    this.counts.dropped++;
  }

  private keep(held: HeldTransaction): void {
    held.fate = Fate.Kept;
    this.counts.kept++;
    const lines = held.lines;
    for (let i = 0; i < lines.length; i++) this.out(lines[i]);
    lines.length = 0;
  }

  /** A dropped transaction written after all. */
  private rescue(held: HeldTransaction): void {
    if (held.fate !== Fate.Dropped) return;
    this.counts.dropped--;
    this.keep(held);
  }

  /**
   * Counts the request's committed autocommit transactions with writes, as
   * `txproxy trace` does to call a request not atomic. True for the
   * request's first one: it is kept aside if dropped.
   */
  private countWrites(session: SessionState, t: TransactionRecord): boolean {
    if ((this.rules.keepMask & Signal.NotAtomic) === 0) return false;
    if (t.request.id !== session.requestId) {
      session.requestId = t.request.id;
      session.requestWrites = 0;
      session.firstWrite = null;
    }
    if (!t.implicit || t.writes === 0 || t.outcome !== 'commit') return false;
    return ++session.requestWrites === 1;
  }

  /** Every other process of a deadlock cycle still in its transaction: that transaction deadlocked too. */
  private markDeadlocked(processes: unknown): void {
    if (!Array.isArray(processes)) return;
    for (const process of processes as Record<string, unknown>[]) {
      const sessionId = process['session.id'];
      const id = process['transaction.id'];
      if (typeof sessionId !== 'string' || typeof id !== 'string') continue;
      const current = this.sessions.get(sessionId)?.current;
      if (current !== undefined && current !== null && current.id === id) this.mark(current, Signal.Deadlock);
    }
  }
}

/** The lines of a transaction the draw picked: it never holds any. */
const EMPTY: string[] = [];

function newSession(): SessionState {
  return { current: null, last: null, pending: 0, requestId: null, requestWrites: 0, firstWrite: null };
}
