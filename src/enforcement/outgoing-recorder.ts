/**
 * Sends what goes to the server in place of a client message. Each message
 * is recorded in the tracker, in order, as if the client had sent it, so
 * the tracker keeps matching the server's answers; the plan for treating
 * those answers is kept with the tracker's entry, and the decisions on its
 * statements wait for them to start.
 */
import type { Verdict } from '../protocol/message-scanner.js';
import type { Entry } from '../tracker/session-tracker.js';
import { markOrigins, type AnswerPlan, type Outgoing, type PendingDecision } from './control-messages.js';
import type { EnforcedSession } from './enforcer-ports.js';
import type { PendingDecisions } from './pending-decisions.js';

/** The session records and forwards the client's message as usual. */
export const DEFAULT = 'default';

export class OutgoingRecorder {
  private readonly plans = new WeakMap<Entry, AnswerPlan>();

  constructor(
    private readonly session: EnforcedSession,
    private readonly pending: PendingDecisions,
  ) {}

  /** How to treat the answers to a message sent (none: as they come). */
  planOf(entry: Entry): AnswerPlan | undefined {
    return this.plans.get(entry);
  }

  /** Forwards the client's message as it is, after any control messages. */
  pass(out: Outgoing[], type: number, buf: Buffer, start: number, end: number, decisions: PendingDecision[] = []): Verdict | 'default' {
    if (out.length === 0 && decisions.length === 0) return DEFAULT;
    out.push({ message: buf.subarray(start, end), hidden: false, plan: null, track: () => this.session.tracker.onClientMessage(type, buf, start, end), decisions });
    return this.emit(out);
  }

  /** Records the messages in the tracker, in order, and returns their bytes. */
  emit(out: Outgoing[]): Buffer {
    const tracker = this.session.tracker;
    for (const item of out) {
      const entry = item.track ? item.track() : tracker.onClientMessage(item.message[0], item.message, 0, item.message.length);
      if (item.decisions !== undefined) this.pending.add(entry, item.decisions);
      if (entry === null) continue; // the server skips it too (after an error, up to Sync)
      entry.hidden = item.hidden;
      if (item.plan !== null) this.plans.set(entry, item.plan);
      markOrigins(entry, item);
    }
    this.pending.recordStarted(false);
    return Buffer.concat(out.map((item) => item.message));
  }
}
