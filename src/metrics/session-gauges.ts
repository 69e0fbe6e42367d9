/**
 * Gauges computed from the live sessions when Prometheus scrapes, so the
 * proxy does no bookkeeping for them between scrapes.
 */
import { performance } from 'node:perf_hooks';
import { Gauge, type Registry } from 'prom-client';
import type { SessionView } from '../sessions/session-view.js';
import { SESSION_ACTIVITIES, sessionActivity } from './session-activity.js';

export function registerSessionGauges(registry: Registry, sessions: () => Iterable<SessionView>): void {
  new Gauge({
    name: 'txproxy_client_sessions',
    help: 'Client sessions now, by database and state (startup, active, idle, idle_in_transaction, idle_in_transaction_aborted).',
    labelNames: ['database', 'state'],
    registers: [registry],
    collect() {
      this.reset();
      const counts = new Map<string, Map<string, number>>();
      for (const session of sessions()) {
        const state = sessionActivity(session);
        if (state === 'closed') continue;
        let byState = counts.get(session.info.database);
        if (byState === undefined) {
          // Every state of a database with sessions is reported, 0 included.
          byState = new Map(SESSION_ACTIVITIES.map((s) => [s, 0]));
          counts.set(session.info.database, byState);
        }
        byState.set(state, byState.get(state)! + 1);
      }
      for (const [database, byState] of counts) {
        for (const [state, n] of byState) this.set({ database, state }, n);
      }
    },
  });

  new Gauge({
    name: 'txproxy_oldest_transaction_age_seconds',
    help: 'Age of the oldest open transaction (implicit ones included), 0 when none is open.',
    registers: [registry],
    collect() {
      const now = performance.now();
      let oldest = 0;
      for (const session of sessions()) {
        const tx = session.tracker.transaction;
        if (tx !== null && session.state === 'ready') oldest = Math.max(oldest, now - tx.startMono);
      }
      this.set(oldest / 1000);
    },
  });
}
