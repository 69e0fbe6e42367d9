/**
 * Policy decisions waiting for their statement to start. A statement is
 * judged before it is sent, but the transaction it runs in is known only
 * once the tracker starts it (an autocommit statement opens its own
 * transaction as it starts): the decision is recorded then, carrying that
 * transaction's id, so readers of the trace find it inside the transaction.
 */
import type { Entry } from '../tracker/session-tracker.js';
import type { StatementRecord } from '../tracker/types.js';
import type { PendingDecision } from './control-messages.js';
import type { DecisionEvent } from './enforcer-ports.js';

export class PendingDecisions {
  private readonly waiting = new Map<StatementRecord, DecisionEvent[]>();

  constructor(private readonly record: (event: DecisionEvent) => void) {}

  get size(): number {
    return this.waiting.size;
  }

  /**
   * The decisions on the statements of a message just tracked as `entry`;
   * null: the server skips the message (after an error, up to Sync), so
   * they belong to no transaction and are recorded now.
   */
  add(entry: Entry | null, decisions: readonly PendingDecision[]): void {
    for (const { index, event } of decisions) {
      const statement = entry?.statements[Math.min(index, entry.statements.length - 1)];
      if (statement === undefined) {
        this.record(event);
        continue;
      }
      const list = this.waiting.get(statement);
      if (list === undefined) this.waiting.set(statement, [event]);
      else list.push(event);
    }
  }

  /** Records those whose statements have started; `all`: the rest too (the session is over). */
  recordStarted(all: boolean): void {
    for (const [statement, events] of this.waiting) {
      if (!all && statement.seq === 0) continue; // the tracker numbers a statement as it starts it
      this.waiting.delete(statement);
      for (const event of events) this.record({ ...event, transactionId: statement.transactionId });
    }
  }
}
