/**
 * Tail sampling of the trace (`trace.keep`): the records of a transaction
 * are held until it is known whether the trace keeps it, then written or
 * dropped together. keep-rules.ts has the decision table; this module
 * holds the records, per session, and applies it.
 *
 * - The sample draw is made when a transaction's first record comes: one
 *   the draw picks is written as it runs, nothing held. The others are held
 *   and kept as soon as one of their records shows a reason (an error, a
 *   lock wait, a deadlock, a policy refusal or warning), or at their end (slow,
 *   failed, not atomic); else dropped at their end.
 * - A transaction holds at most `maxHeld` records. At that point it is
 *   decided early: kept if it already showed a reason, else its held
 *   records are dropped, and so are its later ones until one shows a
 *   reason (an error, a lock wait, a deadlock, a policy refusal or
 *   warning): that one and all after it are written. Its transaction
 *   record, if it ends up kept, says how many statements were left out
 *   (`statements_dropped`).
 * - Records that come after a transaction's own record (a policy's warning
 *   about the request) follow its decision; one that is itself a reason
 *   still brings the dropped transaction back, while it is the session's
 *   last one.
 * - A request's first autocommit transaction with writes, when dropped, is
 *   kept aside until the request ends: a second one makes the request not
 *   atomic, and both are written.
 * - Records of no transaction (session, dry_run) are written at once.
 *
 * Statement and transaction records are held as the tracker's own record
 * objects, and their JSON text is built only for a transaction that is
 * kept: a dropped one costs a few pointers, not the text of its records
 * (except a statement with huge SQL text: see LAZY_TEXT_LIMIT).
 * (Those objects are not changed once reported; their request may still
 * learn its route from a later statement, which the text then shows.)
 */
import { drawSample, keeps, recordSignal, Signal, transactionSignals, type KeepRules } from './keep-rules.js';
import { SessionSlot } from '../tracker/session-slot.js';
import { statementTextLength } from '../tracker/statement-record.js';
import type { SessionInfo, StatementRecord, TransactionRecord } from '../tracker/types.js';

/** Builds the JSON text of statement and transaction records (the TraceWriter). */
export interface RecordText {
  statementLine(session: SessionInfo, statement: StatementRecord): string;
  transactionLine(session: SessionInfo, transaction: TransactionRecord): string;
}

/** A held record: the text of another kind, or a statement or transaction record still to be written out. */
type Entry = string | StatementRecord | TransactionRecord;

const enum Fate {
  /** Records are held until the decision. */
  Holding,
  /** Kept: held records were written, the rest are written as they come. */
  Kept,
  /** Dropped at its end; its records stay in memory a little longer, to be brought back. */
  Dropped,
  /** Dropped early (too many records held): its records are dropped until one is a reason to keep it. */
  DroppedEarly,
}

interface HeldTransaction {
  id: string;
  fate: Fate;
  signals: number;
  entries: Entry[];
  /** Statement records among `entries`, and those dropped early. */
  statementsHeld: number;
  statementsDropped: number;
  /** Whose records these are, and what writes them out. */
  session: SessionInfo | null;
  text: RecordText | null;
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
  /** The session ended: its slot, should its SessionInfo come again, no longer counts. */
  ended: boolean;
}

export interface TailSamplerCounts {
  kept: number;
  dropped: number;
}

export class TailSampler {
  /** Sessions by id, for the records that name theirs (lock waits, policy decisions). */
  private readonly sessions = new Map<string, SessionState>();
  /** The same, found from the SessionInfo that statement and transaction records come with. */
  private readonly slot = new SessionSlot<SessionState>();
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
    session.ended = true;
    const current = session.current;
    if (current !== null) this.settle(current);
  }

  statement(info: SessionInfo, s: StatementRecord, text: RecordText): void {
    const id = s.transactionId;
    if (id === null) {
      this.out(text.statementLine(info, s));
      return;
    }
    const session = this.sessionOf(info);
    // A statement's record comes before its transaction's: it belongs to the
    // transaction in progress or begins one, never to one already ended.
    // (Most often none is in progress, and no id is compared.)
    const current = session.current;
    let held: HeldTransaction;
    if (current === null || current.id !== id) held = this.begin(session, id, info, text);
    else {
      held = current;
      if (held.session === null) this.learn(held, info, text);
    }
    let signals = 0;
    if (s.error !== null) signals |= Signal.Error;
    if (s.lockWaitMs > 0) signals |= Signal.LockWait;
    // A huge statement is held as its record's text, which trace.max_sql_length cuts.
    const entry = held.fate === Fate.Holding && statementTextLength(s) > LAZY_TEXT_LIMIT ? text.statementLine(info, s) : s;
    this.add(held, entry, signals, true);
  }

  transaction(info: SessionInfo, t: TransactionRecord, text: RecordText): void {
    const session = this.sessionOf(info);
    const held = this.find(session, t.id) ?? this.begin(session, t.id, info, text);
    if (held.session === null) this.learn(held, info, text);
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
        hold(held, t);
        this.settle(held);
        if (firstWrite && (held.fate as Fate) === Fate.Dropped) session.firstWrite = held;
        return;
      case Fate.Kept:
        this.out(this.transactionLine(held, info, t, text));
        return;
      case Fate.DroppedEarly:
        if (keeps(this.rules, held.signals, false)) {
          this.out(this.transactionLine(held, info, t, text));
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
    const signal = recordSignal(record);
    if (record.kind === 'deadlock') this.markDeadlocked(record.processes);
    const session = typeof sessionId === 'string' ? this.sessions.get(sessionId) : undefined;
    if (session === undefined || typeof id !== 'string') {
      // A policy decision before its transaction began: it counts for the session's next one.
      if (session !== undefined) session.pending |= signal;
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
      held = this.begin(session, id, null, null);
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

  private sessionOf(info: SessionInfo): SessionState {
    const slotted = this.slot.get(info);
    if (slotted !== undefined && !slotted.ended) return slotted;
    const session = this.sessionById(info.id);
    this.slot.set(info, session);
    return session;
  }

  private sessionById(sessionId: string): SessionState {
    let session = this.sessions.get(sessionId);
    if (session === undefined) {
      session = newSession();
      this.sessions.set(sessionId, session);
    }
    return session;
  }

  private begin(session: SessionState, id: string, info: SessionInfo | null, text: RecordText | null): HeldTransaction {
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
      held.entries = EMPTY;
    } else {
      held = { id, fate: Fate.Holding, signals: 0, entries: EMPTY, statementsHeld: 0, statementsDropped: 0, session: null, text: null };
    }
    held.fate = kept ? Fate.Kept : Fate.Holding;
    held.signals = session.pending;
    // A transaction begun by a lock_wait or policy record learns these from its first statement.
    held.session = info;
    held.text = text;
    if (kept) this.counts.kept++;
    session.pending = 0;
    session.current = held;
    session.last = null;
    return held;
  }

  private add(held: HeldTransaction, entry: Entry, signals: number, statement: boolean): void {
    const reason = this.mark(held, signals);
    switch (held.fate) {
      case Fate.Kept:
        this.write(held, entry);
        return;
      case Fate.Holding:
        hold(held, entry);
        if (statement) held.statementsHeld++;
        if (held.entries.length >= this.rules.maxHeld) this.decideEarly(held);
        return;
      case Fate.Dropped:
        // A record after its end that is a reason itself (a policy's warning) brings it back.
        if (reason) {
          this.rescue(held);
          this.write(held, entry);
        }
        return;
      case Fate.DroppedEarly:
        if (reason) {
          // Kept after all: what comes from now on is written.
          held.fate = Fate.Kept;
          this.counts.kept++;
          this.write(held, entry);
        } else if (statement) held.statementsDropped++;
        return;
    }
  }

  /** A transaction record's text; one that was decided early says how many statement records it left out. */
  private transactionLine(held: HeldTransaction, info: SessionInfo, t: TransactionRecord, text: RecordText): string {
    const line = text.transactionLine(info, t);
    return held.statementsDropped === 0 ? line : `${line.slice(0, -1)},"statements_dropped":${held.statementsDropped}}`;
  }

  private learn(held: HeldTransaction, info: SessionInfo, text: RecordText): void {
    held.session = info;
    held.text = text;
  }

  /** Writes one record out, building its text now if it is the tracker's record object. */
  private write(held: HeldTransaction, entry: Entry): void {
    if (typeof entry === 'string') {
      this.out(entry);
      return;
    }
    const session = held.session;
    const text = held.text;
    if (session === null || text === null) return; // cannot happen: statements and transactions bring both
    this.out(isTransaction(entry) ? text.transactionLine(session, entry) : text.statementLine(session, entry));
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
    held.entries = EMPTY;
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
    const entries = held.entries;
    for (let i = 0; i < entries.length; i++) this.write(held, entries[i]);
    held.entries = EMPTY;
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

/**
 * SQL text up to this length is held as the statement's record object;
 * longer text (a bulk INSERT of megabytes) is turned into the record's JSON
 * text at once, cut to trace.max_sql_length, so that holding a statement
 * never costs more memory than its trace line.
 */
const LAZY_TEXT_LIMIT = 16384;

/** No records held (as a transaction the draw picked always is): shared, never written to, hold() replaces it. */
const EMPTY: Entry[] = [];

/**
 * Adds a record to those a transaction holds. The first two get arrays of
 * their exact size: most transactions (autocommit) hold a statement and
 * their own record, and an empty array's first push makes room for seventeen.
 */
function hold(held: HeldTransaction, entry: Entry): void {
  const entries = held.entries;
  if (entries.length === 0) held.entries = [entry];
  else if (entries.length === 1) held.entries = [entries[0], entry];
  else entries.push(entry);
}

function isTransaction(entry: StatementRecord | TransactionRecord): entry is TransactionRecord {
  return (entry as TransactionRecord).statementLog !== undefined;
}

function newSession(): SessionState {
  return { current: null, last: null, pending: 0, requestId: null, requestWrites: 0, firstWrite: null, ended: false };
}
