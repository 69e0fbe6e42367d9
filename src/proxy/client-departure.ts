/**
 * What becomes of the server connection when the client stops sending
 * (Terminate, a half-close, or a socket that vanished). The rule: the
 * server must end up doing what it would do had the client been connected
 * to it directly. A backend whose client went away still runs everything
 * it received, then reads EOF: an autocommit statement commits, an open
 * transaction block rolls back. So txproxy cuts short only what would be
 * rolled back anyway, and lets everything else finish — which is also the
 * only way its trace can tell what the server did.
 */
import type { TxStatus } from '../protocol/codes.js';
import type { StatementRecord } from '../tracker/types.js';

export type Departure =
  /**
   * Drop the server connection at once: the server is blocked writing to
   * txproxy for a client that stopped reading. Its write fails, as it would
   * to that client directly, and it rolls back what is not committed.
   */
  | 'drop'
  /**
   * Inside a transaction block that nothing in flight can end: the server
   * will roll it back. Cancel the statement running (the server would only
   * notice the lost client when it next writes), say Terminate, end now.
   */
  | 'rollback'
  /**
   * The server still works on what the client sent, outside a transaction
   * block (or on what ends one): say Terminate behind it and keep reading
   * its answers — relaying them to a client that only half-closed — until
   * the server closes, within settle_timeout.
   */
  | 'settle'
  /** Nothing in flight, no transaction: say Terminate, end now. */
  | 'close';

export interface DepartureState {
  /** The server side is paused because the client does not read what is relayed. */
  upstreamBlocked: boolean;
  /** txproxy sent messages of its own ahead of the client's Terminate (a policy's COMMIT). */
  ownMessagesAhead: boolean;
  /** The server's last ReadyForQuery status. */
  status: TxStatus;
  /** Client messages not yet answered. */
  pending: number;
  /** Their statements, in the order the server runs them. */
  inFlight: readonly StatementRecord[];
}

export function departure(state: DepartureState): Departure {
  if (state.upstreamBlocked) return 'drop';
  if (state.ownMessagesAhead) return 'settle';
  if (state.status !== 'I' && !state.inFlight.some(endsBlock)) return 'rollback';
  return state.pending > 0 ? 'settle' : 'close';
}

/**
 * COMMIT, ROLLBACK, PREPARE TRANSACTION: whatever comes after them runs
 * outside the block, and may commit on its own.
 */
function endsBlock(statement: StatementRecord): boolean {
  const control = statement.info.txControl;
  return control === 'commit' || control === 'rollback' || control === 'prepare_transaction';
}
