/**
 * A listener's state for each session, kept in the session's own `slots`
 * array at an index the listener took when it was made. Metrics,
 * OpenTelemetry spans and tail sampling look theirs up on every statement
 * and transaction: an array read, where a Map keyed by the session hashes
 * and probes, and under load (sessions' events interleaved) a Map's
 * remembered last entry is mostly another session's.
 *
 * Each SessionSlot has an index of its own, so two listeners of one kind
 * (tests make many) never share state through a session. Indices are not
 * given back: an App makes its listeners once, so a session's array stays
 * a few entries long.
 */
import type { SessionInfo } from './types.js';

let slotsTaken = 0;

export class SessionSlot<V> {
  private readonly index = slotsTaken++;

  get(session: SessionInfo): V | undefined {
    // A session made without slots (a test's) gets them at its first set().
    return session.slots?.[this.index] as V | undefined;
  }

  set(session: SessionInfo, value: V): void {
    (session.slots ??= [])[this.index] = value;
  }

  delete(session: SessionInfo): void {
    if (session.slots !== undefined) session.slots[this.index] = undefined;
  }
}
