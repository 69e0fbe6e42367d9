/**
 * Where the transaction will stand once everything the client sent so far
 * has run, so a statement can be judged before it reaches the server even
 * when the answers to the ones before it are still on their way (pipelines).
 *
 * Only a forecast: it assumes statements succeed, and it is set back to
 * the server's word (`resync`) at each ReadyForQuery that leaves nothing
 * in flight. Errors cannot be foreseen; a refusal txproxy sends can.
 */
import type { TxStatus } from '../protocol/codes.js';
import type { StatementInfo } from '../sql/classify.js';
import { SavepointStack } from '../tracker/savepoint-stack.js';

export class TransactionForecast {
  /** The status the client will see after what it sent so far. */
  status: TxStatus = 'I';
  /** Statements of the open transaction (explicit, or implicit: one Query or one batch up to Sync). */
  private statements = 0;
  /** An implicit transaction is open: statements since the last Sync/Query end, outside BEGIN. */
  private implicitOpen = false;
  private readonly savepoints = new SavepointStack();

  get savepointDepth(): number {
    return this.savepoints.depth;
  }

  /** How many statements the transaction this statement would run in already holds. */
  statementsBefore(): number {
    return this.status === 'I' && !this.implicitOpen ? 0 : this.statements;
  }

  /** The statement goes to the server (as the client wrote it, or rewritten to the same effect). */
  sent(info: StatementInfo): void {
    this.statements = this.statementsBefore() + 1;
    switch (info.txControl) {
      case 'begin':
        if (this.status === 'I') this.status = 'T';
        this.implicitOpen = false;
        return;
      case 'commit':
      case 'rollback':
        this.savepoints.clear();
        this.status = info.chain && this.status !== 'I' ? 'T' : 'I';
        this.statements = 0;
        this.implicitOpen = false;
        return;
      case 'prepare_transaction':
        this.savepoints.clear();
        this.status = 'I';
        this.statements = 0;
        this.implicitOpen = false;
        return;
      case 'savepoint':
        // Outside a transaction block the server refuses it.
        if (this.status !== 'I' && info.savepoint !== null) this.savepoints.push(info.savepoint);
        return;
      case 'release':
        if (info.savepoint !== null) this.savepoints.release(info.savepoint);
        return;
      case 'rollback_to':
        if (info.savepoint !== null && this.savepoints.rollbackTo(info.savepoint) >= 0 && this.status === 'E') this.status = 'T';
        return;
      default:
        if (this.status === 'I') this.implicitOpen = true;
    }
  }

  /** txproxy refused the statement with an error: a block fails, an implicit transaction is gone. */
  refused(): void {
    if (this.status === 'T') this.status = 'E';
    if (this.status === 'I') {
      this.implicitOpen = false;
      this.statements = 0;
    }
  }

  /** Sync, or the end of a simple Query: its implicit transaction commits. */
  batchEnded(): void {
    this.implicitOpen = false;
    if (this.status === 'I') this.statements = 0;
  }

  /** The server's word, when nothing is in flight. */
  resync(status: TxStatus, savepoints: readonly string[]): void {
    this.status = status;
    this.implicitOpen = false;
    if (status === 'I') this.statements = 0;
    this.savepoints.clear();
    for (const name of savepoints) this.savepoints.push(name);
  }
}
