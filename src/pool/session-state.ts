/**
 * The pins of one client session: the state its server holds for it alone,
 * which keeps the client on that server in transaction mode.
 *
 * Pins are taken as soon as a statement that may leave state runs, and are
 * only ever dropped on the server's word (a session probe, read outside a
 * transaction): a statement that released something inside a transaction
 * that then rolled back released nothing, and the probe sees that. The
 * statements seen only decide when asking the server can be worth it.
 */
import type { TxStatus } from '../protocol/codes.js';
import { PROBED_REASONS, type PinReason, type SessionEffects } from './session-effects.js';
import type { ProbedState } from './session-probe.js';

export type { PinReason } from './session-effects.js';

/** What to do with the server at a ReadyForQuery. */
export type ServerDecision =
  /** Nothing ties the client to this server: it may go back to the pool. */
  | { kind: 'release' }
  /** Ask the server (sessionProbeSql), give the answer to `probed`, then decide again. */
  | { kind: 'probe' }
  /** Keep it: a transaction is open, or state is held for these reasons. */
  | { kind: 'keep'; reasons: PinReason[] };

export class SessionPins {
  private readonly held = new Set<PinReason>();
  /** Reasons statements touched (taken or may have released) since the last probe. */
  private readonly touched = new Set<PinReason>();
  /** Session settings may have changed since the last probe. */
  private settingsChanged = false;

  /** Records a statement the client ran (or sent: that errs the safe way). */
  statementRan(effects: SessionEffects): void {
    if (effects.settings) this.settingsChanged = true;
    for (const reason of effects.pins) {
      this.held.add(reason);
      this.touched.add(reason);
    }
    for (const reason of effects.releases) this.touched.add(reason);
  }

  /** The reasons the client is held by now. */
  reasons(): PinReason[] {
    return [...this.held];
  }

  get pinned(): boolean {
    return this.held.size > 0;
  }

  /** Whether settings changed since the server was last asked: the session's settings map is stale. */
  get settingsStale(): boolean {
    return this.settingsChanged;
  }

  /**
   * At a ReadyForQuery: a server may only go back outside a transaction
   * and with no pin; a probe is asked for when its answer can release the
   * server, or when the settings to carry must be read.
   */
  decide(status: TxStatus): ServerDecision {
    if (status !== 'I') return { kind: 'keep', reasons: this.reasons() };
    if (this.held.size === 0) return this.settingsChanged ? { kind: 'probe' } : { kind: 'release' };
    // Pinned or not, the client's settings must be read back: after a RESET ALL the server has its own startup values, not the client's.
    if (this.settingsChanged) return { kind: 'probe' };
    if (this.held.has('load')) return { kind: 'keep', reasons: this.reasons() };
    // Code txproxy cannot read (DO, CALL) ran since the last probe: it may have released anything held.
    if (this.held.has('unknown')) return { kind: 'probe' };
    // A pin no statement touched since the last probe is still held: asking cannot help.
    for (const reason of this.held) {
      if (!this.touched.has(reason)) return { kind: 'keep', reasons: this.reasons() };
    }
    return { kind: 'probe' };
  }

  /** The server's answer, read outside a transaction: the held state is what it says. */
  probed(state: ProbedState): void {
    for (const reason of PROBED_REASONS) {
      if (state.pins.has(reason)) this.held.add(reason);
      else this.held.delete(reason);
    }
    // Whatever an unrecognised statement left that the probe can see, it has now seen.
    this.held.delete('unknown');
    this.touched.clear();
    this.settingsChanged = false;
  }
}
