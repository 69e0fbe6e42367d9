/**
 * Groups trace records into a transcript: one block per transaction, plus
 * the lines that belong to no transaction (session start/end, pins,
 * statements outside any transaction, dry-run reports, request summaries).
 *
 * Records arrive in the order txproxy wrote them. A statement record is
 * written when the statement finishes and a transaction record when the
 * transaction ends, so a block is complete when its transaction record
 * arrives, with one exception: the tracker ends a transaction while it
 * handles the COMMIT/ROLLBACK that ends it, so that closing statement's own
 * record follows the transaction record (explicit transactions, and
 * `INSERT …; COMMIT` sent as one Query). An ended transaction is therefore
 * *held* until its closing statement arrives, or until any record that
 * cannot belong to it does, or until the reader says the stream went quiet
 * (`releaseHeld`), or at the end of input. Only one is ever held: nothing
 * else is written between a transaction record and its closing statement's.
 *
 * Pure and synchronous: records in, items out. Nothing here reads a clock.
 */
import type {
  DryRunEvent,
  NoteEvent,
  PinEvent,
  SessionEvent,
  StatementEvent,
  TraceEvent,
  TransactionEvent,
} from './record-types.js';
import { classifyStatement } from '../sql/classify.js';

/** A record shown inside a transaction block, after the statement `anchorSeq` (0: before the first). */
export interface Note {
  event: NoteEvent;
  anchorSeq: number;
}

export interface TransactionBlock {
  id: string;
  sessionId: string;
  /** Ordered by `statement.seq`. */
  statements: StatementEvent[];
  notes: Note[];
  /** The transaction record; null when the input ended (or the session did) before it came. */
  tx: TransactionEvent | null;
  /**
   * Set on an autocommit transaction that wrote, when earlier autocommit
   * transactions of the same request wrote too: their ids.
   */
  notAtomicAfter: string[] | null;
}

/** A request that ran several writing autocommit transactions: not atomic. */
export interface RequestSummary {
  requestId: string;
  sessionId: string;
  route: string | null;
  writeTransactions: string[];
}

export type TranscriptItem =
  | { type: 'transaction'; block: TransactionBlock }
  | { type: 'session'; event: SessionEvent }
  /** A session held on its server connection (transaction pooling), or let go: shown where it came. */
  | { type: 'pin'; event: PinEvent }
  /** A statement outside any transaction (e.g. COMMIT with none open), or one whose block was already shown. */
  | { type: 'statement'; statement: StatementEvent; late: boolean }
  /** A lock wait, deadlock or policy decision outside any block shown. */
  | { type: 'note'; event: NoteEvent; late: boolean }
  | { type: 'dry_run'; event: DryRunEvent }
  | { type: 'request'; summary: RequestSummary };

/** Statements that end a transaction: what a held block waits for. */
const CLOSERS = new Set(['COMMIT', 'ROLLBACK', 'PREPARE TRANSACTION']);

/** Bounds memory when records of unfinished transactions pile up (a live stream that lost records). */
const MAX_OPEN_BLOCKS = 10_000;
/** How many shown transaction ids are remembered, to label records that come after their block. */
const SHOWN_MEMORY = 10_000;

interface RequestState {
  summary: RequestSummary;
}

export class Transcript {
  private readonly open = new Map<string, TransactionBlock>();
  private held: TransactionBlock | null = null;
  private readonly shown = new Set<string>();
  /** Current request per session, to notice when one ends. */
  private readonly sessionRequest = new Map<string, string>();
  private readonly requests = new Map<string, RequestState>();

  /** True while an ended transaction waits for its closing statement. */
  get holding(): boolean {
    return this.held !== null;
  }

  push(event: TraceEvent): TranscriptItem[] {
    const out: TranscriptItem[] = [];
    this.releaseHeldUnlessFor(event, out);
    if (event.kind === 'statement' || event.kind === 'transaction') this.noteRequest(event.sessionId, event.requestId, event.route, out);
    switch (event.kind) {
      case 'statement':
        this.statement(event, out);
        break;
      case 'transaction':
        this.transaction(event, out);
        break;
      case 'lock_wait':
        this.note(event, event.seq, out);
        break;
      case 'deadlock':
      case 'policy':
        this.note(event, null, out);
        break;
      case 'dry_run':
        out.push({ type: 'dry_run', event });
        break;
      case 'pin':
      case 'unpin':
        // Written between transactions (at ReadyForQuery, or as the session ends): a line of its own.
        out.push({ type: 'pin', event });
        break;
      case 'session':
        if (event.event === 'end') this.endSession(event.sessionId, out);
        out.push({ type: 'session', event });
        break;
    }
    return out;
  }

  /** The stream went quiet: show an ended transaction without waiting longer for its closing statement. */
  releaseHeld(): TranscriptItem[] {
    const out: TranscriptItem[] = [];
    this.release(out);
    return out;
  }

  /** End of input: everything left, unfinished transactions included. */
  end(): TranscriptItem[] {
    const out: TranscriptItem[] = [];
    this.release(out);
    for (const block of [...this.open.values()]) this.show(block, out);
    for (const [key] of [...this.requests]) this.closeRequest(key, out);
    this.sessionRequest.clear();
    return out;
  }

  // ------------------------------------------------------------------ kinds

  private statement(statement: StatementEvent, out: TranscriptItem[]): void {
    const id = statement.transactionId;
    if (id === null || this.shown.has(id)) {
      out.push({ type: 'statement', statement, late: id !== null });
      return;
    }
    const block = this.blockFor(id, statement.sessionId, out);
    insertStatement(block, statement);
    if (block === this.held && CLOSERS.has(statement.operation)) this.release(out);
  }

  private transaction(tx: TransactionEvent, out: TranscriptItem[]): void {
    const block = this.blockFor(tx.transactionId, tx.sessionId, out);
    if (this.held === block) this.held = null; // a repeated transaction record
    block.tx = tx;
    this.countAutocommitWrite(block, tx);
    this.open.delete(block.id);
    if (block.statements.some((s) => CLOSERS.has(s.operation))) {
      this.show(block, out);
    } else {
      // Most (autocommit ones ended by ReadyForQuery) have no closing statement
      // to wait for; the next record releases them all the same.
      this.release(out);
      this.held = block;
    }
  }

  private note(event: NoteEvent, seq: number | null, out: TranscriptItem[]): void {
    const id = event.transactionId;
    if (id === null || this.shown.has(id)) {
      out.push({ type: 'note', event, late: id !== null });
      return;
    }
    const block = this.blockFor(id, event.sessionId, out);
    const anchorSeq = seq ?? block.statements.at(-1)?.seq ?? 0;
    block.notes.push({ event, anchorSeq });
  }

  private endSession(sessionId: string, out: TranscriptItem[]): void {
    // A session's open transaction ends (as `disconnect`) before the session does;
    // anything still open here lost its transaction record.
    for (const block of [...this.open.values()]) if (block.sessionId === sessionId) this.show(block, out);
    for (const [key, state] of [...this.requests]) if (state.summary.sessionId === sessionId) this.closeRequest(key, out);
    this.sessionRequest.delete(sessionId);
  }

  // ------------------------------------------------------------- requests

  /** A new request id on a session ends the one before it. */
  private noteRequest(sessionId: string, requestId: string | null, route: string | null, out: TranscriptItem[]): void {
    if (requestId === null) return;
    // The first sqlcommenter tags on a session name the request it is already in.
    if (route !== null) {
      const state = this.requests.get(requestId);
      if (state !== undefined) state.summary.route ??= route;
    }
    const previous = this.sessionRequest.get(sessionId);
    if (previous === requestId) return;
    if (previous !== undefined) this.closeRequest(previous, out);
    this.sessionRequest.set(sessionId, requestId);
  }

  private countAutocommitWrite(block: TransactionBlock, tx: TransactionEvent): void {
    // A rolled-back autocommit transaction left nothing behind to be half of anything.
    if (!tx.implicit || tx.writes === 0 || tx.outcome !== 'commit') return;
    // CREATE DATABASE, VACUUM … cannot run in a transaction block: no request could make them atomic.
    if (block.statements.length > 0 && block.statements.every(cannotRunInBlock)) return;
    const key = tx.requestId ?? `${tx.sessionId}.session`;
    let state = this.requests.get(key);
    if (state === undefined) {
      state = { summary: { requestId: key, sessionId: tx.sessionId, route: tx.route, writeTransactions: [] } };
      this.requests.set(key, state);
    }
    state.summary.route ??= tx.route;
    if (state.summary.writeTransactions.length > 0) block.notAtomicAfter = [...state.summary.writeTransactions];
    state.summary.writeTransactions.push(tx.transactionId);
  }

  private closeRequest(key: string, out: TranscriptItem[]): void {
    const state = this.requests.get(key);
    if (state === undefined) return;
    this.requests.delete(key);
    if (state.summary.writeTransactions.length >= 2) out.push({ type: 'request', summary: state.summary });
  }

  // --------------------------------------------------------------- blocks

  private blockFor(id: string, sessionId: string, out: TranscriptItem[]): TransactionBlock {
    if (this.held?.id === id) return this.held;
    let block = this.open.get(id);
    if (block === undefined) {
      block = { id, sessionId, statements: [], notes: [], tx: null, notAtomicAfter: null };
      this.open.set(id, block);
      if (this.open.size > MAX_OPEN_BLOCKS) {
        const oldest = this.open.values().next().value as TransactionBlock;
        this.show(oldest, out);
      }
    }
    return block;
  }

  /**
   * A held transaction is released by any record that cannot be its
   * closing statement: a statement, transaction or session record not of
   * it, or any record of its own session about another transaction.
   */
  private releaseHeldUnlessFor(event: TraceEvent, out: TranscriptItem[]): void {
    const held = this.held;
    if (held === null) return;
    const transactionId = 'transactionId' in event ? event.transactionId : null;
    if (transactionId === held.id) return;
    const tracked = event.kind === 'statement' || event.kind === 'transaction' || event.kind === 'session';
    if (tracked || event.sessionId === held.sessionId) this.release(out);
  }

  private release(out: TranscriptItem[]): void {
    const held = this.held;
    if (held === null) return;
    this.held = null;
    this.show(held, out);
  }

  private show(block: TransactionBlock, out: TranscriptItem[]): void {
    this.open.delete(block.id);
    this.shown.add(block.id);
    if (this.shown.size > SHOWN_MEMORY) this.shown.delete(this.shown.values().next().value as string);
    out.push({ type: 'transaction', block });
  }
}

function cannotRunInBlock(statement: StatementEvent): boolean {
  return statement.text !== null && classifyStatement(statement.text).nonTransactional;
}

/** Keeps statements ordered by seq (they nearly always arrive in order) and drops duplicates. */
function insertStatement(block: TransactionBlock, statement: StatementEvent): void {
  const list = block.statements;
  let i = list.length;
  while (i > 0 && list[i - 1].seq > statement.seq) i--;
  if (i > 0 && list[i - 1].seq === statement.seq) return;
  list.splice(i, 0, statement);
}
