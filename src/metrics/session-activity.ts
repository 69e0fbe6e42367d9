/**
 * What a client session is doing right now, in the terms of
 * `pg_stat_activity.state`: the session gauge and the admin API's
 * `/sessions` both read it at request time, never per message.
 */
import type { SessionView } from '../sessions/session-view.js';

export type SessionActivity =
  /** Connecting upstream or authenticating: no ReadyForQuery yet. */
  | 'startup'
  /** The server is working on something the client sent. */
  | 'active'
  | 'idle'
  | 'idle_in_transaction'
  /** Idle in a transaction an error has failed: only ROLLBACK (TO) helps. */
  | 'idle_in_transaction_aborted'
  | 'closed';

export const SESSION_ACTIVITIES: readonly SessionActivity[] = [
  'startup',
  'active',
  'idle',
  'idle_in_transaction',
  'idle_in_transaction_aborted',
];

export function sessionActivity(session: SessionView): SessionActivity {
  if (session.state === 'closed') return 'closed';
  if (session.state !== 'ready') return 'startup';
  const tracker = session.tracker;
  if (tracker.pending > 0 || tracker.activeStatement !== null) return 'active';
  switch (tracker.status) {
    case 'T':
      return 'idle_in_transaction';
    case 'E':
      return 'idle_in_transaction_aborted';
    default:
      return 'idle';
  }
}
